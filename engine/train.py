"""Training (contract section 3): the loop, its checkpoints, and the seam to the backends.

The loop owns the parameters (one float64 vector in MLP.parameters() order), the optimizer
and the l2 term; a backend computes the data loss and its gradient. Everything a run
depends on is (spec, step, parameters, optimizer state): mini-batches are a pure function
of (seed, step), so a checkpoint holds no random state and a run resumed from step k
repeats an uninterrupted run float for float.
"""

import functools
import random
from typing import NamedTuple

import numpy as np

from . import data
from .errors import NumericError
from .nn import MLP
from .optim import learning_rate, make_optimizer
from .spec import normalize_spec

CHECKPOINT_VERSION = 1


def make_backend(name, model_cfg, loss_name, X, Y):
    """The backend that computes (data loss, accuracy, gradient) for an engine name."""
    if name == "reference":
        from .reference import ReferenceBackend

        return ReferenceBackend(model_cfg, loss_name, X, Y)
    if name == "compiled":
        try:
            from .compiled import CompiledBackend
        except ModuleNotFoundError as e:
            if e.name != f"{__package__}.compiled":
                raise
            raise NotImplementedError("the compiled engine is not built yet") from None
        return CompiledBackend(model_cfg, loss_name, X, Y)
    raise ValueError(f"unknown engine {name!r}: 'compiled' or 'reference'")


def batch_indices(seed, step, samples, batch_size):
    """The sorted sample indices of a step's mini-batch (None: the full batch), a function of
    (seed, step) alone."""
    if batch_size is None or batch_size >= samples:
        return None
    chosen = random.Random(f"{seed}:{step}").sample(range(samples), batch_size)
    return np.array(sorted(chosen), dtype=np.int64)


def initial_model(spec):
    """The MLP as initialised for a spec: seed 1337 gives micrograd's demo init."""
    m = spec["model"]
    return MLP(m["inputs"], m["layers"], m["activation"], rng=random.Random(spec["seed"]))


def initial_parameters(spec):
    """initial_model(spec)'s parameters as a vector, drawn as it draws them (each unit's
    weights uniform in [-1, 1], in order; biases 0) without building 4,000 Values for a
    2-64-64-1 model first."""
    m = spec["model"]
    draw = random.Random(spec["seed"]).random
    sizes = [m["inputs"], *m["layers"]]
    blocks = []
    for nin, nout in zip(sizes[:-1], sizes[1:], strict=True):
        units = np.zeros((nout, nin + 1))
        # random.uniform(-1, 1) is -1 + 2 * random(): the same floats
        units[:, :nin] = np.array([draw() for _ in range(nin * nout)]).reshape(nout, nin)
        units[:, :nin] *= 2.0
        units[:, :nin] -= 1.0
        blocks.append(units.ravel())
    return np.concatenate(blocks)


class _Result(NamedTuple):
    step: list  # the step indices run
    loss: list
    accuracy: list  # None entries for mse
    parameters: list
    checkpoint: dict  # the final training state
    spec: dict  # normalized


class TrainResult(_Result):
    """A run's history and final state; `model` is the MLP holding the final parameters,
    built when first asked for (a model of Values costs more than a short run)."""

    @functools.cached_property
    def model(self):
        model = initial_model(self.spec)
        for p, value in zip(model.parameters(), self.parameters, strict=True):
            p.data = value
        return model


class Progress:
    """What on_step receives after each step's update. `checkpoint()` is the training state
    right after this step, and can only be taken during the on_step call."""

    __slots__ = ("step", "steps", "loss", "accuracy", "_state")

    def __init__(self, step, steps, loss, accuracy, state):
        self.step, self.steps, self.loss, self.accuracy = step, steps, loss, accuracy
        self._state = state

    def checkpoint(self, arrays=False):
        """The training state after this step: its vectors as lists of floats (JSON), or
        with `arrays` as numpy copies (cheaper: for a binary encoding)."""
        if self._state.step != self.step + 1:
            raise RuntimeError("a step's checkpoint can only be taken during its on_step call")
        return self._state.checkpoint(arrays)


class TrainingState:
    """Parameters, optimizer and the next step to run: all a run needs to go on."""

    def __init__(self, spec, parameters):
        self.step = 0
        self.params = np.array(parameters, dtype=np.float64)
        self.optimizer = make_optimizer(spec["optimizer"], len(self.params))

    def checkpoint(self, arrays=False):
        return {
            "version": CHECKPOINT_VERSION,
            "step": self.step,
            "parameters": self.params.copy() if arrays else self.params.tolist(),
            "optimizer": self.optimizer.state(arrays),
        }

    def restore(self, checkpoint, steps):
        """Take a checkpoint's state, after checking it fits this spec (ValueError if not)."""
        if not isinstance(checkpoint, dict) or checkpoint.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"a checkpoint must be a dict of version {CHECKPOINT_VERSION}")
        step = checkpoint.get("step")
        if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= steps:
            raise ValueError(f"the checkpoint's step must be an integer from 0 to {steps}")
        params = checkpoint.get("parameters")
        if not isinstance(params, list | np.ndarray) or np.shape(params) != self.params.shape:
            raise ValueError(
                f"the checkpoint must hold {len(self.params)} parameters, as the spec's model has"
            )
        params = np.array(params, dtype=np.float64)
        if not np.isfinite(params).all():
            raise ValueError("the checkpoint holds a parameter that is not finite")
        self.optimizer.load_state(checkpoint.get("optimizer"))
        self.params, self.step = params, step


def train(spec, on_step=None, checkpoint=None):
    """Run a training job (defaults filled in, SpecError if invalid) and return its history
    and model. `on_step(progress)` is called after each step's update; if it raises, training
    stops and the exception propagates. With `checkpoint` the run resumes where it was taken.
    """
    spec = normalize_spec(spec)
    state = TrainingState(spec, initial_parameters(spec))
    steps = spec["steps"]
    if checkpoint is not None:
        state.restore(checkpoint, steps)
    X, Y = data.load(spec)
    backend = make_backend(spec["engine"], spec["model"], spec["loss"], X, Y)
    history = {"step": [], "loss": [], "accuracy": []}
    for k in range(state.step, steps):
        loss, accuracy = _step(spec, state, backend, k, len(X))
        history["step"].append(k)
        history["loss"].append(loss)
        history["accuracy"].append(accuracy)
        if on_step is not None:
            on_step(Progress(k, steps, loss, accuracy, state))
    return TrainResult(
        history["step"],
        history["loss"],
        history["accuracy"],
        state.params.tolist(),
        state.checkpoint(),
        spec,
    )


def _step(spec, state, backend, k, samples):
    """Step k: the loss before its update (as micrograd's demo prints it), then the update."""
    params = state.params
    batch = batch_indices(spec["seed"], k, samples, spec["batch_size"])
    try:
        data_loss, accuracy, grads = backend.loss_and_grads(params, batch)
    except NumericError as e:
        raise NumericError(
            f"the loss became non-finite at step {k}: {e}", op=e.op, value=e.value, step=k
        ) from e
    l2 = spec["l2"]
    with np.errstate(over="ignore", invalid="ignore"):
        loss = data_loss + l2 * float(params @ params)
        grads = grads + (2 * l2) * params
    if not np.isfinite(loss):
        raise NumericError(f"the loss became non-finite at step {k}", step=k)
    if not np.isfinite(grads).all():
        raise NumericError(f"the gradient became non-finite at step {k}", step=k)
    with np.errstate(over="ignore", invalid="ignore"):
        state.optimizer.step(params, grads, learning_rate(spec["optimizer"], k, spec["steps"]))
    if not np.isfinite(params).all():  # a checkpoint must stay strict JSON
        raise NumericError(f"the update of step {k} made a parameter non-finite", step=k)
    state.step = k + 1
    return float(loss), None if accuracy is None else float(accuracy)
