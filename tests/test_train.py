import json
import math
import random

import numpy as np
import pytest

from engine import MLP, NumericError, SpecError, Value, train
from engine.data import make_moons
from engine.predict import forward, predict
from engine.train import batch_indices, make_backend

SMALL = {
    "engine": "reference",
    "model": {"layers": [4, 4, 1]},
    "dataset": {"samples": 20},
    "steps": 8,
}


def test_micrograd_demo_reaches_97_percent_on_the_reference_path():
    # micrograd's demo (moons, 2-16-16-1, hinge, l2 1e-4, sgd 1.0 to 0.1) in 50 steps
    # instead of 100 to keep the test at a few seconds; bench/ runs the full demo.
    result = train({"engine": "reference", "steps": 50})
    assert result.accuracy[-1] >= 0.97
    assert result.loss[-1] < result.loss[0] / 5
    x, labels = make_moons(samples=100, noise=0.1, seed=0)
    y = predict(
        {"model": result.spec["model"], "loss": "hinge", "parameters": result.parameters}, x
    )["y"]
    assert np.mean([(z > 0) == (label == 1) for z, label in zip(y, labels, strict=True)]) >= 0.97


def micrograd_demo_loss(model, x, labels, alpha):
    """The loss of micrograd's demo, written out as in its notebook."""
    inputs = [list(map(Value, row)) for row in x]
    scores = list(map(model, inputs))
    ys = [2 * label - 1 for label in labels]
    losses = [(1 + -yi * si).relu() for yi, si in zip(ys, scores, strict=True)]
    data_loss = sum(losses) * (1.0 / len(losses))
    reg_loss = alpha * sum(p * p for p in model.parameters())
    return (data_loss + reg_loss).data


def test_loss_at_step_zero_is_the_loss_before_any_update():
    result = train({**SMALL, "steps": 2})
    model = MLP(2, [4, 4, 1], rng=random.Random(1337))
    x, labels = make_moons(samples=20, noise=0.1, seed=0)
    assert result.loss[0] == pytest.approx(micrograd_demo_loss(model, x, labels, 1e-4), rel=1e-12)


def test_l2_term_adds_the_weighted_sum_of_squares():
    without = train({**SMALL, "steps": 1, "l2": 0.0})
    with_l2 = train({**SMALL, "steps": 1, "l2": 0.5})
    squares = sum(p.data**2 for p in MLP(2, [4, 4, 1], rng=random.Random(1337)).parameters())
    assert with_l2.loss[0] - without.loss[0] == pytest.approx(0.5 * squares, rel=1e-12)


def test_result_holds_history_model_and_checkpoint():
    result = train(SMALL)
    assert result.step == list(range(8))
    assert len(result.loss) == len(result.accuracy) == 8
    assert all(0.0 <= a <= 1.0 for a in result.accuracy)
    assert [p.data for p in result.model.parameters()] == result.parameters
    assert result.checkpoint["step"] == 8
    assert result.checkpoint["parameters"] == result.parameters
    assert result.spec["engine"] == "reference" and result.spec["loss"] == "hinge"


def test_mse_reports_no_accuracy():
    result = train({**SMALL, "loss": "mse", "steps": 3, "optimizer": {"learning_rate": 0.01}})
    assert result.accuracy == [None, None, None]


ADAM = {"name": "adam", "learning_rate": 0.05}


@pytest.mark.parametrize(
    "spec",
    [
        {"loss": "bce", "dataset": {"name": "xor"}, "optimizer": ADAM},
        {
            "loss": "ce",
            "dataset": {"name": "blobs"},
            "optimizer": ADAM,
            "model": {"layers": [8, 8, 3]},
        },
        {
            "loss": "ce",
            "dataset": {"name": "circles"},
            "optimizer": {"learning_rate": 0.5, "momentum": 0.5},
            "model": {"layers": [8, 8, 2], "activation": "tanh"},
        },
        {"loss": "mse", "optimizer": {"learning_rate": 0.05}},
    ],
)
def test_each_loss_learns_its_small_problem(spec):
    spec = {
        "engine": "reference",
        "steps": 30,
        "model": {"layers": [8, 8, 1]},
        "dataset": {"samples": 30},
        **spec,
    }
    spec["dataset"] = {"samples": 30, **spec["dataset"]}
    result = train(spec)
    assert result.loss[-1] < 0.7 * result.loss[0]
    if spec["loss"] != "mse":
        assert result.accuracy[-1] > result.accuracy[0]


def test_on_step_receives_each_steps_figures():
    seen = []

    def on_step(progress):
        seen.append(
            (
                progress.step,
                progress.steps,
                progress.loss,
                progress.accuracy,
                json.loads(json.dumps(progress.checkpoint())),
            )
        )

    result = train(SMALL, on_step=on_step)
    assert [s[0] for s in seen] == result.step
    assert {s[1] for s in seen} == {8}
    assert [s[2] for s in seen] == result.loss
    assert [s[3] for s in seen] == result.accuracy
    assert [s[4]["step"] for s in seen] == list(range(1, 9))
    assert seen[-1][4] == result.checkpoint


def test_progress_checkpoint_only_during_on_step():
    kept = []
    train({**SMALL, "steps": 3}, on_step=kept.append)
    with pytest.raises(RuntimeError, match="on_step"):
        kept[0].checkpoint()


def test_on_step_raising_stops_training():
    steps_run = []

    class Cancelled(Exception):
        pass

    def on_step(progress):
        steps_run.append(progress.step)
        if progress.step == 2:
            raise Cancelled

    with pytest.raises(Cancelled):
        train(SMALL, on_step=on_step)
    assert steps_run == [0, 1, 2]


RESUMABLE = [
    {
        "optimizer": {
            "name": "sgd",
            "learning_rate": 0.5,
            "final_learning_rate": 0.05,
            "momentum": 0.9,
        }
    },
    {"optimizer": {"name": "sgd", "learning_rate": 0.5, "momentum": 0.9}, "batch_size": 7},
    {"optimizer": {"name": "adam", "learning_rate": 0.02, "final_learning_rate": 0.0}},
    {
        "optimizer": {"name": "adam", "learning_rate": 0.02},
        "batch_size": 7,
        "loss": "ce",
        "model": {"layers": [4, 4, 2]},
    },
]


SAVED_AS = {  # a checkpoint as JSON text, and with numpy arrays (the store's binary form)
    "json": (lambda progress: json.dumps(progress.checkpoint()), json.loads),
    "arrays": (lambda progress: progress.checkpoint(arrays=True), lambda saved: saved),
}


@pytest.mark.parametrize("form", SAVED_AS)
@pytest.mark.parametrize("extra", RESUMABLE)
def test_resumed_run_repeats_the_uninterrupted_one_exactly(extra, form):
    spec = {**SMALL, **extra}
    save, load = SAVED_AS[form]
    straight = train(spec)
    saved = {}

    def save_at_step_3(progress):
        if progress.step == 3:
            saved["checkpoint"] = save(progress)
            raise KeyboardInterrupt  # the worker dies here

    with pytest.raises(KeyboardInterrupt):
        train(spec, on_step=save_at_step_3)
    resumed = train(spec, checkpoint=load(saved["checkpoint"]))
    assert resumed.step == [4, 5, 6, 7]
    assert straight.loss[:4] + resumed.loss == straight.loss
    assert straight.accuracy[4:] == resumed.accuracy
    assert resumed.parameters == straight.parameters
    assert resumed.checkpoint == straight.checkpoint


def test_resuming_a_finished_run_runs_nothing():
    done = train(SMALL)
    again = train(SMALL, checkpoint=done.checkpoint)
    assert again.step == [] and again.loss == []
    assert again.parameters == done.parameters


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda ck: ck.update(step=9), "step"),
        (lambda ck: ck.update(step=-1), "step"),
        (lambda ck: ck.update(version=2), "version"),
        (lambda ck: ck["parameters"].pop(), "parameters"),
        (lambda ck: ck["parameters"].__setitem__(0, float("nan")), "not finite"),
        (lambda ck: ck.update(optimizer={"name": "adam", "t": 1, "m": [], "v": []}), "optimizer"),
    ],
)
def test_checkpoint_that_does_not_fit_the_spec_is_refused(change, message):
    checkpoint = train({**SMALL, "steps": 2}).checkpoint
    checkpoint["step"] = 1
    change(checkpoint)
    with pytest.raises(ValueError, match=message):
        train(SMALL, checkpoint=checkpoint)


def test_divergence_raises_numeric_error_at_its_step():
    # a linear model on large inputs with a huge rate: the loss grows each step until it
    # overflows
    spec = {
        "engine": "reference",
        "loss": "mse",
        "model": {"layers": [1]},
        "l2": 0.0,
        "data": {"x": [[30.0], [-20.0]], "y": [1.0, -1.0]},
        "steps": 1000,
        "optimizer": {"learning_rate": 10.0},
    }
    recorded = []
    with pytest.raises(NumericError) as caught:
        train(spec, on_step=lambda p: recorded.append(p.step))
    k = caught.value.step
    assert k is not None and k > 0
    assert recorded == list(range(k))
    assert f"step {k}" in str(caught.value)


def test_non_finite_l2_term_fails_its_step_before_recording_it():
    recorded = []
    with pytest.raises(NumericError) as caught:
        train({**SMALL, "l2": 1e308}, on_step=lambda p: recorded.append(p.step))
    assert caught.value.step == 0 and "step 0" in str(caught.value)
    assert recorded == []


def test_invalid_spec_raises_spec_error():
    with pytest.raises(SpecError) as caught:
        train({"optimizer": {"learning_rate": -1}})
    assert caught.value.errors[0]["path"] == "optimizer/learning_rate"


def test_batches_are_a_function_of_seed_and_step():
    a = batch_indices(5, 3, 100, 10)
    assert a.tolist() == batch_indices(5, 3, 100, 10).tolist()
    assert len(set(a.tolist())) == 10 and a.tolist() == sorted(a.tolist())
    assert a.tolist() != batch_indices(5, 4, 100, 10).tolist()
    assert a.tolist() != batch_indices(6, 3, 100, 10).tolist()
    assert batch_indices(5, 3, 100, None) is None


def test_unknown_engine_is_refused():
    with pytest.raises(ValueError, match="engine"):
        make_backend(
            "gpu",
            {"inputs": 2, "layers": [1], "activation": "relu"},
            "hinge",
            np.zeros((1, 2)),
            np.ones(1),
        )


# The compiled engine (engine/compiled/) is built separately; this holds it to the
# contract: the same history as the reference path to 1e-9 relative.
AGREEMENT = [
    {"steps": 5},
    {
        "steps": 5,
        "loss": "ce",
        "dataset": {"name": "blobs", "samples": 30},
        "batch_size": 8,
        "optimizer": {"name": "adam", "learning_rate": 0.05},
    },
    {
        "steps": 5,
        "loss": "bce",
        "dataset": {"name": "xor", "samples": 30},
        "model": {"layers": [8, 1], "activation": "tanh"},
        "optimizer": {"momentum": 0.9},
    },
    {
        "steps": 5,
        "loss": "mse",
        "data": {"x": [[0.1, 0.2], [0.3, -0.5], [1.0, 0.0]], "y": [[1, 0], [0, 1], [0.5, 0.5]]},
        "model": {"layers": [6, 2], "activation": "sigmoid"},
        "optimizer": {"learning_rate": 0.3},
    },
    {"steps": 5, "model": {"layers": [1, 4, 1], "activation": "tanh"}},  # a 1-unit hidden layer
]


@pytest.mark.parametrize("spec", AGREEMENT)
def test_compiled_and_reference_engines_agree(spec):
    reference = train({**spec, "engine": "reference"})
    compiled = train({**spec, "engine": "compiled"})
    np.testing.assert_allclose(compiled.loss, reference.loss, rtol=1e-9)
    assert compiled.accuracy == reference.accuracy
    np.testing.assert_allclose(compiled.parameters, reference.parameters, rtol=1e-9, atol=1e-12)


# --- predict ---


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "linear"])
def test_forward_matches_the_value_mlp(activation):
    mlp = MLP(3, [5, 4, 2], activation=activation, rng=random.Random(9))
    params = [p.data for p in mlp.parameters()]
    rng = random.Random(1)
    x = [[rng.uniform(-2, 2) for _ in range(3)] for _ in range(6)]
    expected = [[v.data for v in mlp(list(map(Value, row)))] for row in x]
    model = {"inputs": 3, "layers": [5, 4, 2], "activation": activation}
    np.testing.assert_allclose(
        forward(model, params, np.array(x)), expected, rtol=1e-12, atol=1e-15
    )


def trained_doc(**spec):
    result = train({**SMALL, **spec})
    return {
        "model": result.spec["model"],
        "loss": result.spec["loss"],
        "parameters": result.parameters,
    }


def test_predict_gives_a_number_per_sample_for_one_output():
    doc = trained_doc()
    out = predict(doc, [[0.0, 0.5], [1.0, -0.5]])
    assert set(out) == {"y"}
    assert len(out["y"]) == 2 and all(isinstance(v, float) for v in out["y"])


def test_predict_gives_probabilities_for_ce():
    doc = trained_doc(loss="ce", model={"layers": [4, 3]}, dataset={"name": "blobs", "samples": 20})
    out = predict(doc, [[0.0, 0.5], [1.0, -0.5]])
    assert all(len(row) == 3 for row in out["y"])
    for z, p in zip(out["y"], out["probabilities"], strict=True):
        assert sum(p) == pytest.approx(1.0)
        assert int(np.argmax(p)) == int(np.argmax(z))
        assert p[0] / p[1] == pytest.approx(math.exp(z[0] - z[1]))


def test_predict_gives_sigmoid_probabilities_for_bce():
    doc = trained_doc(loss="bce")
    out = predict(doc, [[0.0, 0.5], [1.0, -0.5]])
    for z, p in zip(out["y"], out["probabilities"], strict=True):
        assert p == pytest.approx(1 / (1 + math.exp(-z)))


@pytest.mark.parametrize(
    ("x", "where"),
    [
        ([], "x:"),
        ([[0.0, 1.0], [1.0]], "x/1:"),
        ([[0.0, 1.0], "ab"], "x/1:"),
        ([[0.0, 1.0], [1.0, None]], "x/1/1:"),
        ([[0.0, 1.0], [1.0, float("nan")]], "x/1/1:"),
        ([[0.0, True]], "x/0/1:"),
        ([[0.0, 10**400]], "x/0/1:"),
    ],
)
def test_predict_names_the_bad_input(x, where):
    with pytest.raises(ValueError) as caught:
        predict(trained_doc(steps=1), x)
    assert str(caught.value).startswith(where)
