"""The losses, each written twice: per sample on Values (the reference path builds it into
the graph, as micrograd's demo does) and vectorized over a batch with numpy, with its
gradient d(mean loss)/dZ for the fast paths. Both compute the same floats the same way.

Targets: hinge -1/+1, bce 0/1, ce a class index, mse a list of numbers (one per output).
"""

import numpy as np

from .ops import sigmoid_array

LOSSES = ("hinge", "mse", "bce", "ce")


# --- per sample, on Values: `z` is the list of the model's outputs for one sample ---


def hinge(z, y):
    """micrograd's max-margin loss, relu(1 - y*z), in its order: 1 + (-y)*z."""
    return (z[0] * -y + 1).relu()


def mse(z, y):
    """The mean over the outputs of (z - y)^2."""
    terms = [(zj - yj) ** 2 for zj, yj in zip(z, y, strict=True)]
    return terms[0] if len(terms) == 1 else sum(terms) * (1.0 / len(terms))


def bce(z, y):
    """Binary cross-entropy of sigmoid(z), written stably: max(z, 0) - z*y + log(1 + e^-|z|)."""
    z = z[0]
    if z.data >= 0:
        return z * (1.0 - y) + ((-z).exp() + 1).log()
    return z * -y + (z.exp() + 1).log()


def ce(z, y):
    """Softmax cross-entropy, logsumexp(z) - z[y], with the max taken out as a constant so
    that no exp overflows."""
    m = max(zj.data for zj in z)
    return sum((zj - m).exp() for zj in z).log() + m - z[y]


SAMPLE_LOSSES = {"hinge": hinge, "mse": mse, "bce": bce, "ce": ce}


# --- vectorized over a batch: Z is (n, outputs), Y the batch's targets ---


def _hinge(Z, Y):
    z = Z[:, 0]
    margin = z * -Y + 1
    dz = np.where(margin > 0, -Y, 0.0)
    return np.maximum(margin, 0.0), dz[:, None]


def _mse(Z, Y):
    d = Z - Y.reshape(len(Z), -1)
    k = Z.shape[1]
    return (d * d).mean(axis=1), d * (2.0 / k)


def _bce(Z, Y):
    z = Z[:, 0]
    e = np.exp(-np.abs(z))
    per_sample = np.maximum(z, 0.0) - z * Y + np.log(1 + e)
    return per_sample, (sigmoid_array(z) - Y)[:, None]


def _ce(Z, Y):
    m = Z.max(axis=1, keepdims=True)
    e = np.exp(Z - m)
    total = e.sum(axis=1, keepdims=True)
    rows = np.arange(len(Z))
    per_sample = np.log(total[:, 0]) + m[:, 0] - Z[rows, Y]
    dz = e / total
    dz[rows, Y] -= 1.0
    return per_sample, dz


_BATCH_LOSSES = {"hinge": _hinge, "mse": _mse, "bce": _bce, "ce": _ce}


def batch_loss(name, Z, Y):
    """(the mean loss over the batch, d(mean loss)/dZ as an (n, outputs) array)."""
    per_sample, dz = _BATCH_LOSSES[name](Z, Y)
    n = len(Z)
    return float(per_sample.sum() * (1.0 / n)), dz * (1.0 / n)


def accuracy(name, Z, Y):
    """The share of the batch classified right (hinge: sign, bce: p > 0.5, ce: argmax);
    None for mse, a regression."""
    if name == "hinge":
        right = (Z[:, 0] > 0) == (Y > 0)
    elif name == "bce":
        right = (Z[:, 0] > 0) == (Y == 1)
    elif name == "ce":
        right = Z.argmax(axis=1) == Y
    else:
        return None
    return float(right.mean())
