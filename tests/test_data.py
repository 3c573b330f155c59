import math

import numpy as np
import pytest

from engine import data
from engine.spec import normalize_spec

GENERATED = [("moons", {}), ("circles", {}), ("xor", {}), ("blobs", {"classes": 4})]


@pytest.mark.parametrize(("name", "extra"), GENERATED)
def test_dataset_same_seed_same_data(name, extra):
    make = data.GENERATORS[name]
    assert make(samples=50, noise=0.2, seed=7, **extra) == make(
        samples=50, noise=0.2, seed=7, **extra
    )


@pytest.mark.parametrize(("name", "extra"), GENERATED)
def test_dataset_other_seed_other_data(name, extra):
    make = data.GENERATORS[name]
    x1, _ = make(samples=50, noise=0.2, seed=7, **extra)
    x2, _ = make(samples=50, noise=0.2, seed=8, **extra)
    assert x1 != x2


@pytest.mark.parametrize(
    ("name", "extra", "classes"), [(n, e, e.get("classes", 2)) for n, e in GENERATED]
)
def test_dataset_shapes_and_classes(name, extra, classes):
    x, labels = data.GENERATORS[name](samples=101, noise=0.1, seed=3, **extra)
    assert len(x) == len(labels) == 101
    assert all(len(row) == 2 and all(math.isfinite(v) for v in row) for row in x)
    assert set(labels) == set(range(classes))


def test_dataset_samples_split_as_make_moons_splits_them():
    _, labels = data.make_moons(samples=101, seed=0)
    assert labels.count(0) == 50 and labels.count(1) == 51  # n // 2 on the outer arc
    _, labels = data.make_blobs(samples=10, seed=0, classes=3)
    assert [labels.count(c) for c in range(3)] == [4, 3, 3]


def test_moons_without_noise_lie_on_their_arcs():
    x, labels = data.make_moons(samples=40, noise=0.0, seed=1)
    for (a, b), label in zip(x, labels, strict=True):
        if label == 0:  # the upper arc: the unit half circle about (0, 0)
            assert math.hypot(a, b) == pytest.approx(1.0) and b >= -1e-12
        else:  # the lower arc: the unit half circle about (1, 0.5), opening upwards
            assert math.hypot(a - 1, b - 0.5) == pytest.approx(1.0) and b <= 0.5 + 1e-12
    ends = {tuple(round(v, 12) for v in row) for row in x}
    assert {(1.0, 0.0), (-1.0, 0.0), (0.0, 0.5), (2.0, 0.5)} <= ends  # linspace includes pi


def test_moons_are_shuffled():
    _, labels = data.make_moons(samples=100, noise=0.1, seed=0)
    assert labels != sorted(labels)


def test_moons_noise_has_the_asked_spread():
    clean, _ = data.make_moons(samples=2000, noise=0.0, seed=5)
    noisy, _ = data.make_moons(samples=2000, noise=0.3, seed=5)
    # the same shuffle, then noise: the differences are the noise itself
    deltas = np.array(noisy) - np.array(clean)
    assert deltas.std() == pytest.approx(0.3, rel=0.05)
    assert abs(deltas.mean()) < 0.03


def test_circles_without_noise_have_radii_one_and_factor():
    x, labels = data.make_circles(samples=30, noise=0.0, seed=0)
    for row, label in zip(x, labels, strict=True):
        assert math.hypot(*row) == pytest.approx(1.0 if label == 0 else 0.8)


def test_xor_labels_follow_the_signs_without_noise():
    x, labels = data.make_xor(samples=200, noise=0.0, seed=2)
    assert labels == [int((a > 0) != (b > 0)) for a, b in x]


@pytest.mark.parametrize(
    ("loss", "expected"),
    [("hinge", {-1.0, 1.0}), ("mse", {-1.0, 1.0}), ("bce", {0.0, 1.0}), ("ce", {0, 1})],
)
def test_generated_labels_come_in_the_form_the_loss_expects(loss, expected):
    spec = normalize_spec({"loss": loss, "dataset": {"samples": 30}})
    X, Y = data.load(spec)
    assert X.shape == (30, 2)
    assert set(Y.tolist()) == expected
    assert Y.dtype == (np.int64 if loss == "ce" else np.float64)


def test_inline_data_loads_as_given():
    spec = normalize_spec(
        {"loss": "mse", "data": {"x": [[1, 2], [3, 4]], "y": [[1, 2, 3], [4, 5, 6]]}}
    )
    X, Y = data.load(spec)
    assert X.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert Y.shape == (2, 3)
