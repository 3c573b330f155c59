"""Neurons, layers and multi-layer perceptrons of `Value`s (after micrograd's nn.py)."""

import random

from .value import Value

ACTIVATIONS = ("relu", "tanh", "sigmoid", "linear")


def _rng(seed):
    """An explicit random.Random from a seed, or the one given: runs are reproducible."""
    return seed if isinstance(seed, random.Random) else random.Random(seed)


class Module:
    def zero_grad(self):
        for p in self.parameters():
            p.grad = 0.0

    def parameters(self):
        return []


class Neuron(Module):
    def __init__(self, nin, activation="relu", rng=None):
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {', '.join(ACTIVATIONS)}, not {activation!r}"
            )
        rng = _rng(rng)
        self.w = [Value(rng.uniform(-1, 1)) for _ in range(nin)]
        self.b = Value(0)
        self.activation = activation

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
    def __init__(self, nin, nout, activation="relu", rng=None):
        rng = _rng(rng)
        self.neurons = [Neuron(nin, activation, rng) for _ in range(nout)]

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
