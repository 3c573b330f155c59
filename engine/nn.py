"""Neurons, layers and multi-layer perceptrons of `Value`s (after micrograd's nn.py)."""

import random

from .value import Value

ACTIVATIONS = ("relu", "tanh", "sigmoid", "linear")


def _rng(rng):
    """Where weights come from: the random.Random given, a new one from a seed, or, for
    None, Python's global `random` as micrograd draws from it (so `random.seed(1337)` then
    `MLP(2, [16, 16, 1])` gives micrograd's very weights). Training passes its own."""
    if rng is None or rng is random:
        return random
    return rng if isinstance(rng, random.Random) else random.Random(rng)


def _activation(activation, nonlin):
    """The activation a Neuron applies; `nonlin` is micrograd 0.1.0's spelling (True: relu,
    False: linear), a bool in activation's place its positional form `Neuron(3, False)`."""
    if isinstance(activation, bool) or (activation is None and nonlin is not None):
        if nonlin is not None and activation is not None:
            raise TypeError("give a Neuron activation= or nonlin=, not both")
        return "relu" if (activation if nonlin is None else nonlin) else "linear"
    if nonlin is not None:
        raise TypeError("give a Neuron activation= or nonlin=, not both")
    activation = "relu" if activation is None else activation
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, not {activation!r}")
    return activation


class Module:
    def zero_grad(self):
        for p in self.parameters():
            p.grad = 0.0

    def parameters(self):
        return []


class Neuron(Module):
    """`activation` (default relu) after the weighted sum; `nonlin=False` is micrograd's
    linear unit. Weights are uniform in [-1, 1], drawn in order; the bias starts at 0."""

    def __init__(self, nin, activation=None, rng=None, *, nonlin=None):
        self.activation = _activation(activation, nonlin)
        rng = _rng(rng)
        self.w = [Value(rng.uniform(-1, 1)) for _ in range(nin)]
        self.b = Value(0)

    def __call__(self, x):
        act = sum((wi * xi for wi, xi in zip(self.w, x, strict=True)), self.b)
        if self.activation == "linear":
            return act
        return getattr(act, self.activation)()

    def parameters(self):
        return self.w + [self.b]

    def __repr__(self):
        return f"{self.activation.capitalize()}Neuron({len(self.w)})"


class Layer(Module):
    def __init__(self, nin, nout, activation=None, rng=None, *, nonlin=None):
        rng = _rng(rng)
        self.neurons = [Neuron(nin, activation, rng, nonlin=nonlin) for _ in range(nout)]

    def __call__(self, x):
        out = [n(x) for n in self.neurons]
        return out[0] if len(out) == 1 else out

    def parameters(self):
        return [p for n in self.neurons for p in n.parameters()]

    def __repr__(self):
        return f"Layer of [{', '.join(str(n) for n in self.neurons)}]"


class MLP(Module):
    """Hidden layers use `activation`; the last layer is linear, as in micrograd."""

    def __init__(self, nin, nouts, activation="relu", rng=None):
        if not nouts or any(not isinstance(n, int) or n < 1 for n in [nin, *nouts]):
            raise ValueError("an MLP needs a positive number of inputs and of units per layer")
        rng = _rng(rng)
        sizes = [nin, *nouts]
        self.nin, self.nouts, self.activation = nin, list(nouts), activation
        self.layers = [
            Layer(sizes[i], sizes[i + 1], activation if i < len(nouts) - 1 else "linear", rng)
            for i in range(len(nouts))
        ]

    def __call__(self, x):
        for layer in self.layers:
            x = [n(x) for n in layer.neurons]  # a list even when a hidden layer has 1 unit
        return x[0] if len(x) == 1 else x

    def parameters(self):
        return [p for layer in self.layers for p in layer.parameters()]

    def __repr__(self):
        return f"MLP of [{', '.join(str(layer) for layer in self.layers)}]"
