import copy
import json
import time
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import engine.spec as spec_module
from engine import SpecError, normalize_spec
from engine.numbers import finite_array, finite_rows
from engine.spec import (
    BASE_BYTES,
    COMPILED_BYTES_PER_PARAMETER,
    DATA_BYTES_PER_NUMBER,
    job_memory,
)

DEMO = {
    "model": {"inputs": 2, "layers": [16, 16, 1], "activation": "relu"},
    "dataset": {"name": "moons", "samples": 100, "noise": 0.1, "seed": 0},
    "loss": "hinge",
    "optimizer": {"name": "sgd", "learning_rate": 1.0, "final_learning_rate": 0.1, "momentum": 0.0},
    "l2": 0.0001,
    "steps": 100,
    "batch_size": None,
    "seed": 1337,
    "engine": "compiled",
    "timeout": None,  # no time limit unless the caller's limits give a default
}


def test_empty_spec_is_micrograds_demo():
    assert normalize_spec({}) == DEMO


def test_contract_example_is_valid_and_keeps_its_values():
    example = {k: v for k, v in DEMO.items() if k != "engine"}
    example["optimizer"] = {"name": "sgd", "learning_rate": 1.0, "final_learning_rate": 0.1}
    assert normalize_spec(example) == DEMO


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"loss": "ce", "dataset": {"name": "blobs", "classes": 4}, "optimizer": {"name": "adam"}},
        {"loss": "mse", "data": {"x": [[1], [2]], "y": [[1, 2], [3, 4]]}, "batch_size": 1},
        {"loss": "ce", "data": {"x": [[0.5, 1]], "y": [2.0]}, "model": {"layers": [3, 4]}},
    ],
)
def test_normalizing_is_idempotent_and_json(spec):
    once = normalize_spec(spec)
    assert normalize_spec(once) == once
    assert json.loads(json.dumps(once)) == once


def test_given_optimizer_has_its_own_defaults():
    assert normalize_spec({"optimizer": {}})["optimizer"] == {
        "name": "sgd",
        "learning_rate": 1.0,
        "final_learning_rate": None,
        "momentum": 0.0,
    }
    assert normalize_spec({"optimizer": {"name": "adam"}})["optimizer"] == {
        "name": "adam",
        "learning_rate": 0.001,
        "final_learning_rate": None,
        "beta1": 0.9,
        "beta2": 0.999,
        "eps": 1e-8,
    }


@pytest.mark.parametrize(
    ("spec", "layers"),
    [
        ({"loss": "ce"}, [16, 16, 2]),
        ({"loss": "ce", "dataset": {"name": "blobs"}}, [16, 16, 3]),
        ({"loss": "ce", "dataset": {"name": "blobs", "classes": 5}}, [16, 16, 5]),
        ({"loss": "bce", "dataset": {"name": "xor"}}, [16, 16, 1]),
        ({"loss": "ce", "data": {"x": [[0.0]] * 3, "y": [0, 4, 1]}}, [16, 16, 5]),
        ({"loss": "mse", "data": {"x": [[0.0]] * 2, "y": [[1, 2, 3]] * 2}}, [16, 16, 3]),
        ({"loss": "mse", "data": {"x": [[0.0]] * 2, "y": [1, 2]}}, [16, 16, 1]),
    ],
)
def test_default_last_layer_fits_the_loss_and_data(spec, layers):
    assert normalize_spec(spec)["model"]["layers"] == layers


def test_blobs_default_to_three_classes():
    assert normalize_spec({"loss": "ce", "dataset": {"name": "blobs"}})["dataset"] == {
        "name": "blobs",
        "samples": 100,
        "noise": 0.1,
        "seed": 0,
        "classes": 3,
    }


def test_inputs_come_from_inline_data():
    spec = normalize_spec({"data": {"x": [[1, 2, 3], [4, 5, 6]], "y": [1, -1]}})
    assert spec["model"]["inputs"] == 3
    assert spec["data"] == {"x": [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], "y": [1.0, -1.0]}


def test_numbers_become_floats():
    spec = normalize_spec({"l2": 0, "optimizer": {"learning_rate": 2, "final_learning_rate": 0}})
    assert spec["l2"] == 0.0 and isinstance(spec["l2"], float)
    assert isinstance(spec["optimizer"]["learning_rate"], float)


X2 = [[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]]
BAD = [
    ([], ""),
    ({"stepz": 5}, "stepz"),
    ({"model": {"layers": [4, 1], "depth": 2}}, "model/depth"),
    ({"model": []}, "model"),
    ({"model": {"inputs": 3}}, "model/inputs"),
    ({"model": {"layers": []}}, "model/layers"),
    ({"model": {"layers": [16, 0, 1]}}, "model/layers/1"),
    ({"model": {"layers": [16, 2.5, 1]}}, "model/layers/1"),
    ({"model": {"layers": [16, True, 1]}}, "model/layers/1"),
    ({"model": {"layers": [16, 16, 2]}}, "model/layers/2"),
    ({"model": {"activation": "gelu"}}, "model/activation"),
    (
        {"loss": "ce", "dataset": {"name": "blobs", "classes": 4}, "model": {"layers": [8, 3]}},
        "model/layers/1",
    ),
    ({"loss": "ce", "model": {"layers": [8, 1]}}, "model/layers/1"),
    (
        {"loss": "ce", "data": {"x": [[1.0]] * 2, "y": [0, 3]}, "model": {"layers": [3]}},
        "model/layers/0",
    ),
    (
        {"loss": "mse", "data": {"x": [[1.0]] * 2, "y": [[1, 2]] * 2}, "model": {"layers": [1]}},
        "model/layers/0",
    ),
    ({"loss": "l1"}, "loss"),
    ({"loss": "hinge", "dataset": {"name": "blobs"}}, "loss"),
    ({"loss": "mse", "dataset": {"name": "blobs", "classes": 3}}, "loss"),
    ({"dataset": {"name": "spirals"}}, "dataset/name"),
    ({"dataset": {"samples": 0}}, "dataset/samples"),
    ({"dataset": {"samples": 10.0}}, "dataset/samples"),
    ({"dataset": {"noise": -0.1}}, "dataset/noise"),
    ({"dataset": {"noise": float("nan")}}, "dataset/noise"),
    ({"dataset": {"noise": float("inf")}}, "dataset/noise"),
    ({"dataset": {"noise": True}}, "dataset/noise"),
    ({"dataset": {"seed": -1}}, "dataset/seed"),
    ({"dataset": {"seed": 2**64}}, "dataset/seed"),
    ({"dataset": {"classes": 3}}, "dataset/classes"),
    ({"dataset": {"name": "blobs", "classes": 1}, "loss": "ce"}, "dataset/classes"),
    ({"dataset": {"size": 3}}, "dataset/size"),
    ({"dataset": {}, "data": {"x": X2, "y": [1, -1, 1]}}, "data"),
    ({"data": {"x": [], "y": []}}, "data/x"),
    ({"data": {"x": X2}}, "data/y"),
    ({"data": {"x": X2, "y": [1, -1, 1], "w": 1}}, "data/w"),
    ({"data": {"x": [5, 6], "y": [1, -1]}}, "data/x/0"),
    ({"data": {"x": [[0.0, 1.0], [1.0]], "y": [1, -1]}}, "data/x/1"),
    ({"data": {"x": [[0.0, 1.0], [1.0, "2"]], "y": [1, -1]}}, "data/x/1/1"),
    ({"data": {"x": [[0.0, 1.0], [1.0, float("inf")]], "y": [1, -1]}}, "data/x/1/1"),
    ({"data": {"x": [[0.0, 1.0], [1.0, 10**400]], "y": [1, -1]}}, "data/x/1/1"),
    ({"data": {"x": X2, "y": [1, -1]}}, "data/y"),
    ({"data": {"x": X2, "y": [1, -1, 0]}}, "data/y/2"),
    ({"loss": "bce", "data": {"x": X2, "y": [1, -1, 0]}}, "data/y/1"),
    ({"loss": "ce", "data": {"x": X2, "y": [1, 0.5, 0]}}, "data/y/1"),
    ({"loss": "ce", "data": {"x": X2, "y": [1, -1, 0]}}, "data/y/1"),
    ({"loss": "ce", "data": {"x": X2, "y": [1, True, 0]}}, "data/y/1"),
    ({"loss": "mse", "data": {"x": X2, "y": [1, None, 0]}}, "data/y/1"),
    ({"loss": "mse", "data": {"x": X2, "y": [[1, 2], [1], [3, 4]]}}, "data/y/1"),
    ({"optimizer": "adam"}, "optimizer"),
    ({"optimizer": {"name": "rmsprop"}}, "optimizer/name"),
    ({"optimizer": {"learning_rate": 0}}, "optimizer/learning_rate"),
    ({"optimizer": {"learning_rate": "1"}}, "optimizer/learning_rate"),
    ({"optimizer": {"final_learning_rate": -1}}, "optimizer/final_learning_rate"),
    ({"optimizer": {"momentum": 1.0}}, "optimizer/momentum"),
    ({"optimizer": {"beta1": 0.9}}, "optimizer/beta1"),
    ({"optimizer": {"name": "adam", "momentum": 0.9}}, "optimizer/momentum"),
    ({"optimizer": {"name": "adam", "beta2": 1.0}}, "optimizer/beta2"),
    ({"optimizer": {"name": "adam", "eps": 0.0}}, "optimizer/eps"),
    ({"optimizer": {"nesterov": True}}, "optimizer/nesterov"),
    ({"l2": -1e-4}, "l2"),
    ({"l2": None}, "l2"),
    ({"steps": 0}, "steps"),
    ({"steps": 10.5}, "steps"),
    ({"steps": "100"}, "steps"),
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": 101}, "batch_size"),
    ({"seed": 1.5}, "seed"),
    ({"engine": "gpu"}, "engine"),
]


@pytest.mark.parametrize(("spec", "path"), BAD, ids=[f"{i}-{p}" for i, (_, p) in enumerate(BAD)])
def test_bad_spec_names_the_field(spec, path):
    with pytest.raises(SpecError) as caught:
        normalize_spec(spec)
    assert caught.value.errors[0]["path"] == path
    assert all(e["message"] for e in caught.value.errors)


def test_every_problem_is_reported():
    with pytest.raises(SpecError) as caught:
        normalize_spec({"steps": 0, "l2": -1, "optimizer": {"momentum": 2}, "colour": "red"})
    paths = {e["path"] for e in caught.value.errors}
    assert paths == {"steps", "l2", "optimizer/momentum", "colour"}


def test_a_huge_bad_data_set_gets_a_short_answer():
    with pytest.raises(SpecError) as caught:
        normalize_spec({"data": {"x": [["a"]] * 10_000, "y": [1] * 10_000}})
    assert 1 <= len(caught.value.errors) <= 20
    assert str(caught.value).startswith("data/x/0/0: must be a finite number")


@pytest.mark.parametrize(
    ("spec", "limits", "path"),
    [
        ({"steps": 1001}, {"max_steps": 1000}, "steps"),
        ({"dataset": {"samples": 501}}, {"max_samples": 500}, "dataset/samples"),
        ({"data": {"x": X2, "y": [1, 1, 1]}}, {"max_samples": 2}, "data/x"),
        ({"model": {"layers": [100, 100, 1]}}, {"max_parameters": 10_000}, "model/layers"),
    ],
)
def test_limits_are_enforced(spec, limits, path):
    with pytest.raises(SpecError) as caught:
        normalize_spec(spec, limits)
    assert caught.value.errors[0]["path"] == path
    normalize_spec(spec)  # without the limit the same spec is fine


def test_limits_admit_what_they_name():
    # 2-100-100-1 has 300 + 10100 + 101 = 10501 parameters
    limits = {"max_steps": 1000, "max_samples": 500, "max_parameters": 10_501}
    normalize_spec(
        {"steps": 1000, "dataset": {"samples": 500}, "model": {"layers": [100, 100, 1]}}, limits
    )


@pytest.mark.parametrize(
    ("spec", "work"),
    [
        ({}, 337 * 100 * 100),  # the demo: 2-16-16-1, full batch of 100, 100 steps
        ({"batch_size": 10}, 337 * 10 * 100),  # samples per step, not samples
        ({"data": {"x": X2, "y": [1, -1, 1]}, "model": {"layers": [1]}, "steps": 7}, 3 * 3 * 7),
    ],
)
def test_work_is_parameters_times_samples_per_step_times_steps(spec, work):
    normalize_spec(spec, {"max_work": work})  # the cap itself is admitted
    with pytest.raises(SpecError) as caught:
        normalize_spec(spec, {"max_work": work - 1})
    [error] = caught.value.errors
    assert error["path"] == ""
    assert f"= {work:,}, is above the cap of {work - 1:,}" in error["message"]


def test_memory_estimate_grows_with_the_graph_each_engine_builds():
    demo = job_memory(337, 100, 100, 3, "compiled")
    assert demo == BASE_BYTES + COMPILED_BYTES_PER_PARAMETER * 337 + DATA_BYTES_PER_NUMBER * 300
    # the compiled engine traces one sample; the reference engine a graph per sample
    assert job_memory(337, 100_000, 100_000, 3, "compiled") < 2 * demo
    assert job_memory(337, 100_000, 100_000, 3, "reference") > 10 * 2**30
    assert job_memory(337, 100_000, 10, 3, "reference") < 2 * demo


def test_memory_cap_refuses_before_anything_is_allocated():
    runaway = {"model": {"layers": [997, 997, 1]}, "dataset": {"samples": 10**6}, "steps": 1}
    started = time.perf_counter()
    with pytest.raises(SpecError) as caught:
        normalize_spec(runaway, {"max_memory": 2 * 2**30})
    assert time.perf_counter() - started < 0.1
    [error] = caught.value.errors
    assert error["path"] == "" and "998,995 parameters, 1,000,000 samples" in error["message"]
    assert "above the cap of 2,147,483,648 bytes" in error["message"]
    normalize_spec({**runaway, "dataset": {"samples": 100}, "model": {"layers": [300, 1]}})


@pytest.mark.parametrize(
    ("given", "expected"),
    [({}, 3600), ({"timeout": None}, 3600), ({"timeout": 1}, 1), ({"timeout": 86_400}, 86_400)],
)
def test_timeout_defaults_and_is_kept(given, expected):
    limits = {"default_timeout": 3600, "max_timeout": 86_400}
    spec = normalize_spec(given, limits)
    assert spec["timeout"] == expected
    assert normalize_spec(spec, limits) == spec


@pytest.mark.parametrize("timeout", [0, -5, 86_401, 1.5, "3600", True])
def test_bad_timeout_is_named(timeout):
    with pytest.raises(SpecError) as caught:
        normalize_spec({"timeout": timeout}, {"default_timeout": 3600, "max_timeout": 86_400})
    assert [e["path"] for e in caught.value.errors] == ["timeout"]


def test_spec_must_be_an_object():
    with pytest.raises(SpecError, match="JSON object"):
        normalize_spec("moons")


# --- inline data checked at once when it is all good, value by value when not ---

GOOD = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(10**20), 10**20),
    st.sampled_from([0, 1, -1, 2, 0.5, 1.0, -1.0, -0.0, 3.0, 2**53 + 1]),
)
BAD = st.sampled_from([True, False, None, "1", [1.0], {}, 10**400, float("nan"), float("inf")])


def outcome(spec):
    try:
        return normalize_spec(spec)
    except SpecError as error:
        return error.errors


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 3).flatmap(
        lambda width: st.lists(st.lists(GOOD, min_size=width, max_size=width), min_size=1)
    ),
    st.sampled_from(["hinge", "bce", "ce", "mse", "mse rows"]),
    st.sampled_from(["none", "x value", "x row", "y value"]),
    BAD,
    st.randoms(use_true_random=False),
)
def test_data_checked_at_once_is_the_data_checked_value_by_value(x, loss, spoil, bad, rng):
    labels = {"hinge": [-1, 1.0], "bce": [0, 1.0], "ce": [0, 1, 2, 5.0], "mse": [0.25, -3, 1e300]}
    if loss == "mse rows":  # targets as rows
        loss, y = "mse", copy.deepcopy(rng.sample(x, len(x)))
    else:
        y = [rng.choice(labels[loss]) for _ in x]
    i = rng.randrange(len(x))
    if spoil == "x value":
        x[i][rng.randrange(len(x[i]))] = bad
    elif spoil == "x row":
        x[i] = x[i][1:] if len(x[i]) > 1 else [*x[i], 1.0]
    elif spoil == "y value":
        y[i] = bad if rng.random() < 0.5 else rng.choice([7, -1, 0.5, 2.0, 3])  # or a wrong label
    spec = {"data": {"x": x, "y": y}, "loss": loss}
    fast = outcome(copy.deepcopy(spec))
    with (
        mock.patch.object(spec_module, "finite_rows", lambda rows, width: None),
        mock.patch.object(spec_module, "_good_labels", lambda y, loss: None),
    ):
        slow = outcome(copy.deepcopy(spec))
    assert repr(fast) == repr(slow)  # the same floats and ints, or the same errors


def test_good_data_takes_the_checks_at_once():
    x = [[1, 2.5], [3, -4.0]]
    assert finite_rows(x, 2) == [[1.0, 2.5], [3.0, -4.0]]
    assert all(type(v) is float for row in finite_rows(x, 2) for v in row)
    assert finite_rows([[1, 2], [3]], 2) is None and finite_rows([[1, True]], 2) is None
    assert finite_array([1, 2.0, 10**300]).tolist() == [1.0, 2.0, 1e300]
    assert finite_array([10**400]) is None and finite_array([float("inf")]) is None
