"""Optimizers over one flat float64 parameter vector, updated in place. Their state is plain
lists of floats, so a checkpoint is JSON and floats round-trip exactly (or, asked for arrays,
numpy copies of the vectors, for a binary encoding)."""

import numpy as np


def learning_rate(optimizer, step, steps):
    """The rate at `step` (0-based) of `steps`: constant, or linear from `learning_rate`
    towards `final_learning_rate` (micrograd's demo: 1.0 - 0.9*k/100)."""
    lr0, lrf = optimizer["learning_rate"], optimizer["final_learning_rate"]
    return lr0 if lrf is None else lr0 + (lrf - lr0) * step / steps


def _check_kind(state, name):
    if not isinstance(state, dict) or state.get("name") != name:
        raise ValueError(f"the checkpoint's optimizer state is not that of {name}")


def _vector(state, key, size):
    values = state.get(key)
    if not isinstance(values, list | np.ndarray) or np.shape(values) != (size,):
        raise ValueError(f"the optimizer state needs '{key}': a list of {size} numbers")
    vector = np.array(values, dtype=np.float64)
    if not np.isfinite(vector).all():
        raise ValueError(f"the optimizer state's '{key}' holds a number that is not finite")
    return vector


def _saved(vector, arrays):
    if vector is None:
        return None
    return vector.copy() if arrays else vector.tolist()


class SGD:
    """Gradient descent with momentum in PyTorch's form, v = mu*v + g; p -= lr*v. With
    mu = 0 it is micrograd's p -= lr*g, float for float."""

    name = "sgd"

    def __init__(self, size, momentum=0.0):
        self.momentum = momentum
        self.velocity = np.zeros(size) if momentum else None

    def step(self, params, grads, lr):
        update = grads
        if self.momentum:
            self.velocity *= self.momentum
            self.velocity += grads
            update = self.velocity
        params -= lr * update

    def state(self, arrays=False):
        return {"name": self.name, "velocity": _saved(self.velocity, arrays)}

    def load_state(self, state):
        _check_kind(state, self.name)
        if self.momentum:
            self.velocity = _vector(state, "velocity", len(self.velocity))


class Adam:
    """Adam (Kingma & Ba) with bias correction; t counts the updates made, from 1."""

    name = "adam"

    def __init__(self, size, beta1=0.9, beta2=0.999, eps=1e-8):
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.t = 0
        self.m = np.zeros(size)
        self.v = np.zeros(size)

    def step(self, params, grads, lr):
        self.t += 1
        self.m *= self.beta1
        self.m += (1 - self.beta1) * grads
        self.v *= self.beta2
        self.v += (1 - self.beta2) * (grads * grads)
        m_hat = self.m / (1 - self.beta1**self.t)
        v_hat = self.v / (1 - self.beta2**self.t)
        params -= lr * m_hat / (np.sqrt(v_hat) + self.eps)

    def state(self, arrays=False):
        return {
            "name": self.name,
            "t": self.t,
            "m": _saved(self.m, arrays),
            "v": _saved(self.v, arrays),
        }

    def load_state(self, state):
        _check_kind(state, self.name)
        t = state.get("t")
        if isinstance(t, bool) or not isinstance(t, int) or t < 0:
            raise ValueError("the optimizer state needs 't': the number of updates made")
        self.m = _vector(state, "m", len(self.m))
        self.v = _vector(state, "v", len(self.v))
        self.t = t


def make_optimizer(optimizer, size):
    """The optimizer a normalized spec's `optimizer` section asks for, over `size` parameters."""
    if optimizer["name"] == "adam":
        return Adam(size, optimizer["beta1"], optimizer["beta2"], optimizer["eps"])
    return SGD(size, optimizer["momentum"])
