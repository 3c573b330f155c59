import json
import math

import numpy as np
import pytest

from engine.optim import SGD, Adam, learning_rate, make_optimizer


def test_sgd_without_momentum_is_micrograds_update():
    params = np.array([1.0, -2.0])
    SGD(2).step(params, np.array([0.5, 0.25]), 0.1)
    assert params.tolist() == [1.0 - 0.1 * 0.5, -2.0 - 0.1 * 0.25]


def test_sgd_momentum_accumulates_velocity():
    params = np.array([1.0])
    sgd = SGD(1, momentum=0.9)
    sgd.step(params, np.array([1.0]), 0.1)  # v = 1.0
    assert params[0] == pytest.approx(0.9)
    sgd.step(params, np.array([0.5]), 0.1)  # v = 0.9 * 1.0 + 0.5 = 1.4
    assert params[0] == pytest.approx(0.9 - 0.14)
    assert sgd.velocity[0] == pytest.approx(1.4)


def test_adam_two_steps_by_hand():
    b1, b2, eps, lr = 0.9, 0.999, 1e-8, 0.1
    params = np.array([1.0])
    adam = Adam(1, b1, b2, eps)
    adam.step(params, np.array([2.0]), lr)
    # m = 0.2, v = 0.004; bias-corrected: 2.0 and 4.0, so the first step is lr * sign(g)
    p1 = 1.0 - lr * 2.0 / (math.sqrt(4.0) + eps)
    assert params[0] == pytest.approx(p1, rel=1e-14)
    adam.step(params, np.array([-1.0]), lr)
    m = 0.9 * 0.2 + 0.1 * -1.0
    v = 0.999 * 0.004 + 0.001 * 1.0
    p2 = p1 - lr * (m / (1 - 0.9**2)) / (math.sqrt(v / (1 - 0.999**2)) + eps)
    assert params[0] == pytest.approx(p2, rel=1e-14)
    assert adam.t == 2


def test_learning_rate_decays_as_micrograds_demo():
    demo = {"learning_rate": 1.0, "final_learning_rate": 0.1}
    assert [learning_rate(demo, k, 100) for k in range(100)] == [
        1.0 - 0.9 * k / 100 for k in range(100)
    ]


def test_learning_rate_without_final_rate_is_constant():
    constant = {"learning_rate": 0.05, "final_learning_rate": None}
    assert {learning_rate(constant, k, 10) for k in range(10)} == {0.05}


@pytest.mark.parametrize(
    "section",
    [
        {"name": "sgd", "momentum": 0.9},
        {"name": "sgd", "momentum": 0.0},
        {"name": "adam", "beta1": 0.8, "beta2": 0.99, "eps": 1e-6},
    ],
)
def test_optimizer_state_round_trips_through_json(section):
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=5) for _ in range(6)]
    straight, p_straight = make_optimizer(section, 5), np.linspace(-1, 1, 5)
    for g in grads:
        straight.step(p_straight, g, 0.01)
    first, p = make_optimizer(section, 5), np.linspace(-1, 1, 5)
    for g in grads[:3]:
        first.step(p, g, 0.01)
    resumed = make_optimizer(section, 5)
    resumed.load_state(json.loads(json.dumps(first.state())))
    for g in grads[3:]:
        resumed.step(p, g, 0.01)
    assert p.tolist() == p_straight.tolist()


@pytest.mark.parametrize(
    ("optimizer", "state"),
    [
        (SGD(3, momentum=0.5), {"name": "adam", "t": 1, "m": [0] * 3, "v": [0] * 3}),
        (SGD(3, momentum=0.5), {"name": "sgd", "velocity": [0.0, 1.0]}),
        (Adam(3), {"name": "adam", "t": -1, "m": [0] * 3, "v": [0] * 3}),
        (Adam(3), {"name": "adam", "t": 2, "m": [0] * 3, "v": [0, 0, float("nan")]}),
        (Adam(3), None),
    ],
)
def test_optimizer_refuses_a_state_that_does_not_fit(optimizer, state):
    with pytest.raises(ValueError, match="optimizer state"):
        optimizer.load_state(state)
