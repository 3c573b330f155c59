import math
import random

import numpy as np
import pytest

from engine import Value
from engine.losses import SAMPLE_LOSSES, accuracy, batch_loss
from tests.gradcheck import close, numeric_grad

# (loss, outputs per sample, a random target)
CASES = [
    ("hinge", 1, lambda rng: rng.choice([-1.0, 1.0])),
    ("bce", 1, lambda rng: rng.choice([0.0, 1.0])),
    ("ce", 4, lambda rng: rng.randrange(4)),
    ("mse", 1, lambda rng: [rng.uniform(-2, 2)]),
    ("mse", 3, lambda rng: [rng.uniform(-2, 2) for _ in range(3)]),
]


def value_loss(name, z, y):
    return SAMPLE_LOSSES[name]([Value(v) for v in z], y).data


@pytest.mark.parametrize(("name", "k", "target"), CASES)
def test_sample_loss_gradient_matches_finite_differences(name, k, target):
    rng = random.Random(f"grad-{name}-{k}")
    for _ in range(20):
        z = [rng.uniform(-3, 3) for _ in range(k)]
        y = target(rng)
        if name == "hinge" and abs(1 - y * z[0]) < 1e-3:
            continue  # the kink of relu has no derivative
        leaves = [Value(v) for v in z]
        SAMPLE_LOSSES[name](leaves, y).backward()
        for i in range(k):
            numeric = numeric_grad(lambda zs, y=y: value_loss(name, zs, y), z, i)
            assert close(leaves[i].grad, numeric), (name, z, y, i)


@pytest.mark.parametrize(
    ("name", "z", "y", "expected"),
    [
        ("hinge", [0.3], 1.0, 0.7),
        ("hinge", [0.3], -1.0, 1.3),
        ("hinge", [2.0], 1.0, 0.0),
        ("bce", [0.0], 1.0, math.log(2)),
        ("bce", [2.0], 1.0, -math.log(1 / (1 + math.exp(-2.0)))),
        ("bce", [-2.0], 1.0, -math.log(1 / (1 + math.exp(2.0)))),
        ("bce", [-2.0], 0.0, -math.log(1 - 1 / (1 + math.exp(2.0)))),
        ("ce", [0.0, 0.0, 0.0], 1, math.log(3)),
        ("ce", [1.0, 2.0, 3.0], 0, -math.log(math.e / (math.e + math.e**2 + math.e**3))),
        ("mse", [1.0, 2.0], [0.0, 0.0], 2.5),
        ("mse", [1.5], [0.5], 1.0),
    ],
)
def test_sample_loss_hand_values(name, z, y, expected):
    assert value_loss(name, z, y) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_ce_and_bce_are_stable_for_huge_outputs():
    # exp(1000) overflows: the naive formulas cannot be evaluated at all
    assert value_loss("ce", [1000.0, 0.0], 1) == pytest.approx(1000.0)
    assert value_loss("ce", [1000.0, 0.0], 0) == pytest.approx(0.0, abs=1e-300)
    assert value_loss("bce", [-1000.0], 1.0) == pytest.approx(1000.0)
    assert value_loss("bce", [1000.0], 1.0) == 0.0
    Z = np.array([[1000.0, 0.0], [-1000.0, 1000.0]])
    mean, dz = batch_loss("ce", Z, np.array([1, 0]))
    assert mean == pytest.approx(1500.0)
    assert np.isfinite(dz).all()


def batch_of(name, k, target, n, seed):
    rng = random.Random(seed)
    Z = [[rng.uniform(-3, 3) for _ in range(k)] for _ in range(n)]
    ys = [target(rng) for _ in range(n)]
    return Z, ys


@pytest.mark.parametrize(("name", "k", "target"), CASES)
def test_batch_loss_matches_the_value_form(name, k, target):
    Z, ys = batch_of(name, k, target, 9, f"batch-{name}-{k}")
    leaves = [[Value(v) for v in row] for row in Z]
    losses = [SAMPLE_LOSSES[name](z, y) for z, y in zip(leaves, ys, strict=True)]
    mean = sum(losses) * (1.0 / len(losses))  # micrograd's demo mean
    mean.backward()
    dtype = np.int64 if name == "ce" else np.float64
    Y = np.array(ys, dtype=dtype)
    vector_mean, dZ = batch_loss(name, np.array(Z), Y)
    assert vector_mean == pytest.approx(mean.data, rel=1e-12)
    assert dZ.shape == (9, k)
    expected = np.array([[v.grad for v in row] for row in leaves])
    np.testing.assert_allclose(dZ, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    ("name", "Z", "Y", "expected"),
    [
        ("hinge", [[0.5], [-0.2], [0.1], [-3.0]], [1.0, 1.0, -1.0, -1.0], 0.5),
        ("bce", [[0.5], [-0.2], [0.1], [-3.0]], [1.0, 0.0, 0.0, 0.0], 0.75),
        ("ce", [[0.1, 0.9, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 5.0]], [1, 1, 2], 2 / 3),
    ],
)
def test_accuracy_per_loss(name, Z, Y, expected):
    assert accuracy(name, np.array(Z), np.array(Y)) == pytest.approx(expected)


def test_mse_has_no_accuracy():
    assert accuracy("mse", np.zeros((3, 1)), np.zeros(3)) is None
