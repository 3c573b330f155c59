"""Seeded toy datasets in pure Python (moons, circles, blobs, xor), and a spec's data as arrays.

Each generator returns `(x, labels)`: rows of two floats and class indices 0..classes-1.
`random.Random` gives the same stream on every platform, so a seed means the same data
everywhere. moons and circles are built as scikit-learn's make_moons and make_circles build
them: the points on the arcs, shuffled, then Gaussian noise on each coordinate.
"""

import math
import random

import numpy as np

DATASETS = ("moons", "circles", "blobs", "xor")
FIXED_CLASSES = {"moons": 2, "circles": 2, "xor": 2}  # blobs has as many as it is asked for


def _linspace(start, stop, num, endpoint=True):
    """numpy.linspace's points, in plain floats."""
    if num <= 1:
        return [start] * num
    step = (stop - start) / (num - 1 if endpoint else num)
    points = [i * step + start for i in range(num)]
    if endpoint:
        points[-1] = stop
    return points


def _shuffled_with_noise(rows, labels, noise, rng):
    order = list(range(len(rows)))
    rng.shuffle(order)
    x = [[v + rng.gauss(0.0, noise) for v in rows[i]] for i in order]
    return x, [labels[i] for i in order]


def make_moons(samples=100, noise=0.1, seed=0):
    """Two interleaving half circles: class 0 the upper arc, class 1 the lower one."""
    rng = random.Random(seed)
    n_out = samples // 2
    n_in = samples - n_out
    outer = [[math.cos(t), math.sin(t)] for t in _linspace(0.0, math.pi, n_out)]
    inner = [[1 - math.cos(t), 1 - math.sin(t) - 0.5] for t in _linspace(0.0, math.pi, n_in)]
    return _shuffled_with_noise(outer + inner, [0] * n_out + [1] * n_in, noise, rng)


def make_circles(samples=100, noise=0.1, seed=0, factor=0.8):
    """A circle of radius 1 (class 0) around one of radius `factor` (class 1)."""
    rng = random.Random(seed)
    n_out = samples // 2
    n_in = samples - n_out
    outer = [[math.cos(t), math.sin(t)] for t in _linspace(0.0, 2 * math.pi, n_out, False)]
    inner = [
        [factor * math.cos(t), factor * math.sin(t)]
        for t in _linspace(0.0, 2 * math.pi, n_in, False)
    ]
    return _shuffled_with_noise(outer + inner, [0] * n_out + [1] * n_in, noise, rng)


def make_blobs(samples=100, noise=0.1, seed=0, classes=3):
    """`classes` Gaussian blobs of standard deviation `noise`, centred evenly on the unit
    circle; as in make_blobs the first `samples % classes` blobs get one point more."""
    rng = random.Random(seed)
    rows, labels = [], []
    for c in range(classes):
        angle = 2 * math.pi * c / classes
        count = samples // classes + (c < samples % classes)
        rows += [[math.cos(angle), math.sin(angle)] for _ in range(count)]
        labels += [c] * count
    return _shuffled_with_noise(rows, labels, noise, rng)


def make_xor(samples=100, noise=0.1, seed=0):
    """Points uniform on [-1, 1]^2; class 1 where the coordinates' signs differ."""
    rng = random.Random(seed)
    rows = [[rng.uniform(-1, 1), rng.uniform(-1, 1)] for _ in range(samples)]
    labels = [int((a > 0) != (b > 0)) for a, b in rows]
    return _shuffled_with_noise(rows, labels, noise, rng)


GENERATORS = {"moons": make_moons, "circles": make_circles, "blobs": make_blobs, "xor": make_xor}


def generate(dataset):
    """The data of a normalized `dataset` section: (x rows, class indices)."""
    options = {k: v for k, v in dataset.items() if k != "name"}
    return GENERATORS[dataset["name"]](**options)


def targets_for(loss, labels):
    """Class indices as the loss expects them: -1/+1 (hinge, mse), 0/1 (bce), indices (ce)."""
    labels = np.asarray(labels, dtype=np.int64)
    if loss == "ce":
        return labels
    if loss == "bce":
        return labels.astype(np.float64)
    return 2.0 * labels - 1.0


def load(spec):
    """A normalized spec's data as arrays: X (n, inputs) float64, and Y: (n,) float64 labels
    or targets, (n,) int64 class indices for ce, (n, k) float64 for multi-output mse."""
    if "data" in spec:
        x, y = spec["data"]["x"], spec["data"]["y"]
        dtype = np.int64 if spec["loss"] == "ce" else np.float64
        return np.array(x, dtype=np.float64), np.array(y, dtype=dtype)
    x, labels = generate(spec["dataset"])
    return np.array(x, dtype=np.float64), targets_for(spec["loss"], labels)
