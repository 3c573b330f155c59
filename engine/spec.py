"""The training spec (contract section 3): every default filled in, every field checked.

An empty spec is micrograd's demo: moons, a 2-16-16-1 ReLU MLP, hinge loss, l2 1e-4 and
SGD decaying from 1.0 to 0.1 over 100 steps. `normalize_spec` is pure and quick (it never
generates data) and idempotent; its SpecError names each bad field, e.g.
`optimizer/learning_rate` or `data/y/7`.

Limits (each optional) bound a job before it is queued: its size field by field, its work
(parameters x samples per step x steps), the memory it will take (`job_memory`) and its
`timeout`.
"""

from typing import NamedTuple

import numpy as np

from .data import DATASETS, FIXED_CLASSES
from .errors import SpecError
from .losses import LOSSES
from .nn import ACTIVATIONS
from .numbers import finite_array, finite_float, finite_rows

ENGINES = ("compiled", "reference")
FIELDS = (
    "model",
    "data",
    "dataset",
    "loss",
    "optimizer",
    "l2",
    "steps",
    "batch_size",
    "seed",
    "engine",
    "timeout",
    "webhook",
    "metadata",
)
WEBHOOK_EVENTS = ("start", "progress", "completed")
"""What a job's webhook may ask for; `completed` (succeeded, failed or cancelled) always
comes."""
MAX_URL_LENGTH = 2048
MAX_METADATA_PAIRS, MAX_METADATA_KEY, MAX_METADATA_VALUE = 16, 64, 512
"""A job's metadata: string pairs the client attaches (never read in training)."""
MAX_SEED = 2**63 - 1
MAX_ERRORS = 20  # a malformed data set of 100,000 rows still gets a readable answer
HIDDEN_LAYERS = [16, 16]
DATASET_DEFAULTS = {"name": "moons", "samples": 100, "noise": 0.1, "seed": 0}
BLOBS_CLASSES = 3
DEMO_OPTIMIZER = {"name": "sgd", "learning_rate": 1.0, "final_learning_rate": 0.1, "momentum": 0.0}
OPTIMIZER_DEFAULTS = {  # when `optimizer` is given: a constant rate unless asked otherwise
    "sgd": {"learning_rate": 1.0, "final_learning_rate": None, "momentum": 0.0},
    "adam": {
        "learning_rate": 0.001,
        "final_learning_rate": None,
        "beta1": 0.9,
        "beta2": 0.999,
        "eps": 1e-8,
    },
}

# What a job takes, for its memory estimate (measured on the engines, rounded up): the
# interpreter, numpy and the compiled engine's batch chunks; the compiled engine's traced
# graph and program per parameter; the reference engine's graph per parameter per sample of
# a step; the data set per number (generated in Python or parsed JSON, then arrays).
BASE_BYTES = 256 * 2**20
COMPILED_BYTES_PER_PARAMETER = 2_400
REFERENCE_BYTES_PER_PARAMETER_SAMPLE = 1_200
DATA_BYTES_PER_NUMBER = 128

# Ranges of numbers: (test, how the message says it).
POSITIVE = (lambda v: v > 0, "greater than 0")
NON_NEGATIVE = (lambda v: v >= 0, "of at least 0")
FRACTION = (lambda v: 0 <= v < 1, "of at least 0 and below 1")

_MISSING = object()


def _join(*parts):
    return "/".join(str(p) for p in parts if p != "")


class _DataShape(NamedTuple):
    inputs: int | None  # None: unknown, the data itself is bad
    samples: int | None
    outputs: int | None  # units the last layer needs
    at_least: bool = False  # inline ce: more outputs than the labels show are fine


class _Checker:
    """Collects the errors; each check returns the value to use (None after an error)."""

    def __init__(self):
        self.errors = []

    def fail(self, path, message):
        if len(self.errors) < MAX_ERRORS:
            self.errors.append({"path": path, "message": message})

    def section(self, spec, key, fields):
        """spec[key] as a dict ({} if absent); fields outside `fields` are reported."""
        value = spec.get(key, {})
        if not isinstance(value, dict):
            self.fail(key, "must be an object")
            return {}
        for name in value:
            if name not in fields:
                self.fail(_join(key, name), "unknown field")
        return value

    def choice(self, obj, key, path, default, options):
        value = obj.get(key, default)
        if isinstance(value, str) and value in options:
            return value
        self.fail(path, f"must be one of {', '.join(map(repr, options))}, not {value!r}")
        return None

    def integer(self, obj, key, path, default, minimum, maximum=None):
        value = obj.get(key, _MISSING)
        if value is _MISSING or (value is None and default is None):
            return default
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < minimum
            or (maximum is not None and value > maximum)
        ):
            upto = f" and at most {maximum}" if maximum is not None else ""
            self.fail(path, f"must be an integer of at least {minimum}{upto}")
            return None
        return value

    def number(self, obj, key, path, default, rule, nullable=False):
        value = obj.get(key, _MISSING)
        if value is _MISSING:
            return default
        if value is None and nullable:
            return None
        test, words = rule
        number = finite_float(value)
        if number is None or not test(number):
            self.fail(path, f"must be a finite number {words}")
            return None
        return number

    def within(self, value, limit, path, what):
        if value is not None and limit is not None and value > limit:
            self.fail(path, f"at most {limit} {what} are allowed, not {value}")


def parameter_count(inputs, layers):
    """Weights and biases of an MLP with `inputs` inputs and `layers` units per layer."""
    sizes = [inputs, *layers]
    return sum((sizes[i] + 1) * sizes[i + 1] for i in range(len(layers)))


def job_work(parameters, samples_per_step, steps):
    """A job's work: parameters x samples per step x steps (the multiply-adds of its forward
    passes, give or take a constant factor)."""
    return parameters * samples_per_step * steps


def job_memory(parameters, samples, samples_per_step, numbers_per_sample, engine):
    """Bytes a training run is estimated to take at its peak: the compiled engine traces
    one sample's graph (its size grows with the parameters) and runs batches in chunks of
    bounded size; the reference engine builds a graph per sample of each step."""
    graph = (
        REFERENCE_BYTES_PER_PARAMETER_SAMPLE * parameters * samples_per_step
        if engine == "reference"
        else COMPILED_BYTES_PER_PARAMETER * parameters
    )
    return BASE_BYTES + graph + DATA_BYTES_PER_NUMBER * numbers_per_sample * samples


def normalize_spec(spec, limits=None):
    """The spec with every default filled in, or SpecError listing what is wrong.

    `limits` (each optional, None = unlimited): max_steps, max_parameters, max_samples,
    max_work (parameters x samples per step x steps), max_memory (bytes, `job_memory`'s
    estimate), max_timeout (seconds) and default_timeout (the `timeout` of a spec that gives
    none; None: no time limit).
    """
    if not isinstance(spec, dict):
        raise SpecError([{"path": "", "message": "a training spec must be a JSON object"}])
    limits = limits or {}
    check = _Checker()
    for key in spec:
        if key not in FIELDS:
            check.fail(key, "unknown field")
    loss = check.choice(spec, "loss", "loss", "hinge", LOSSES)
    out = {}
    if "data" in spec and "dataset" in spec:
        check.fail("data", "give either data (inline) or dataset (generated), not both")
        shape = _DataShape(None, None, None)
    elif "data" in spec:
        out["data"], shape = _inline_data(check, spec, loss, limits.get("max_samples"))
    else:
        out["dataset"], shape = _dataset(check, spec, loss, limits.get("max_samples"))
    model, parameters = _model(check, spec, shape, loss, limits.get("max_parameters"))
    optimizer = _optimizer(check, spec)
    l2 = check.number(spec, "l2", "l2", 0.0001, NON_NEGATIVE)
    steps = check.integer(spec, "steps", "steps", 100, 1)
    check.within(steps, limits.get("max_steps"), "steps", "steps")
    batch_size = check.integer(spec, "batch_size", "batch_size", None, 1, shape.samples)
    seed = check.integer(spec, "seed", "seed", 1337, 0, MAX_SEED)
    engine = check.choice(spec, "engine", "engine", "compiled", ENGINES)
    if not check.errors and None not in (parameters, shape.samples, shape.inputs, steps):
        _within_budget(check, limits, parameters, shape, batch_size, steps, engine)
    timeout = limits.get("default_timeout")  # also for null
    if spec.get("timeout") is not None:
        timeout = check.integer(spec, "timeout", "timeout", None, 1, limits.get("max_timeout"))
    webhook = _webhook(check, spec) if spec.get("webhook") is not None else None
    metadata = _metadata(check, spec["metadata"]) if "metadata" in spec else None
    if check.errors:
        raise SpecError(check.errors)
    return {
        "model": model,
        **out,
        "loss": loss,
        "optimizer": optimizer,
        "l2": l2,
        "steps": steps,
        "batch_size": batch_size,
        "seed": seed,
        "engine": engine,
        "timeout": timeout,
        **({} if webhook is None else {"webhook": webhook}),
        **({} if metadata is None else {"metadata": metadata}),
    }


def _metadata(check, value):
    """Up to MAX_METADATA_PAIRS pairs of strings: keys of 1 to 64 characters, values of at
    most 512; each bad pair named `metadata/<key>`."""
    if not isinstance(value, dict):
        check.fail("metadata", "must be an object of string keys and string values")
        return None
    if len(value) > MAX_METADATA_PAIRS:
        check.fail("metadata", f"at most {MAX_METADATA_PAIRS} pairs, not {len(value)}")
    for key, text in value.items():
        if not 1 <= len(key) <= MAX_METADATA_KEY:
            check.fail(f"metadata/{key}", f"a key must be 1 to {MAX_METADATA_KEY} characters")
        elif not isinstance(text, str) or len(text) > MAX_METADATA_VALUE:
            check.fail(
                f"metadata/{key}", f"must be a string of at most {MAX_METADATA_VALUE} characters"
            )
    return dict(value)


def _within_budget(check, limits, parameters, shape, batch_size, steps, engine):
    """A job of known size must fit max_work and max_memory (errors on the whole spec: the
    size comes from the model, the data, batch_size and steps together)."""
    per_step = batch_size or shape.samples
    work, max_work = job_work(parameters, per_step, steps), limits.get("max_work")
    if max_work is not None and work > max_work:
        check.fail(
            "",
            f"the job's work, parameters x samples per step x steps = {parameters:,} x "
            f"{per_step:,} x {steps:,} = {work:,}, is above the cap of {max_work:,}: ask for "
            "fewer steps, a smaller batch_size or a smaller model",
        )
    memory = job_memory(parameters, shape.samples, per_step, shape.inputs + 1, engine)
    max_memory = limits.get("max_memory")
    if max_memory is not None and memory > max_memory:
        check.fail(
            "",
            f"the job would take about {memory:,} bytes of memory ({parameters:,} parameters, "
            f"{shape.samples:,} samples, {per_step:,} per step, on the {engine} engine), "
            f"above the cap of {max_memory:,} bytes: ask for a smaller model or less data",
        )


def _dataset(check, spec, loss, max_samples):
    section = check.section(spec, "dataset", (*DATASET_DEFAULTS, "classes"))
    d = DATASET_DEFAULTS
    name = check.choice(section, "name", "dataset/name", d["name"], DATASETS)
    samples = check.integer(section, "samples", "dataset/samples", d["samples"], 1)
    check.within(samples, max_samples, "dataset/samples", "samples")
    dataset = {
        "name": name,
        "samples": samples,
        "noise": check.number(section, "noise", "dataset/noise", d["noise"], NON_NEGATIVE),
        "seed": check.integer(section, "seed", "dataset/seed", d["seed"], 0, MAX_SEED),
    }
    if name == "blobs":
        classes = check.integer(section, "classes", "dataset/classes", BLOBS_CLASSES, 2)
        dataset["classes"] = classes
    else:
        classes = FIXED_CLASSES.get(name)
        if "classes" in section and name is not None:
            check.fail("dataset/classes", f"only blobs takes classes; {name} has {classes}")
    outputs = None
    if loss == "ce":
        outputs = classes
    elif loss is not None and classes is not None:
        outputs = 1
        if classes != 2:
            check.fail("loss", f"{loss} needs 2 classes and {name} has {classes}: use ce")
    return dataset, _DataShape(2, samples, outputs)


def _inline_data(check, spec, loss, max_samples):
    section = check.section(spec, "data", ("x", "y"))
    x, y = section.get("x"), section.get("y")
    if not isinstance(x, list) or not x:
        check.fail("data/x", "must be a non-empty list of rows of numbers")
        x = None
    if not isinstance(y, list):
        check.fail("data/y", "must be a list of labels, one per row of x")
        y = None
    if x is None:
        return section, _DataShape(None, None, None)
    check.within(len(x), max_samples, "data/x", "samples")
    if not isinstance(x[0], list) or not x[0]:
        check.fail("data/x/0", "must be a non-empty list of numbers")
        return section, _DataShape(None, None, None)
    width = len(x[0])
    rows = _rows(check, x, width, "data/x")
    if y is None:
        return section, _DataShape(width, len(x), None)
    if len(y) != len(x):
        check.fail("data/y", f"must hold {len(x)} labels, one per row of x, not {len(y)}")
        return section, _DataShape(width, len(x), None)
    labels, outputs = _labels(check, y, loss)
    return {"x": rows, "y": labels}, _DataShape(width, len(x), outputs, loss == "ce")


def _rows(check, rows, width, path):
    """The rows as lists of floats: checked at once when all are good, else row by row to
    name each bad one."""
    good = finite_rows(rows, width)
    if good is not None:
        return good
    return [_row(check, row, width, f"{path}/{i}") for i, row in enumerate(rows)]


def _row(check, row, width, path):
    if not isinstance(row, list) or len(row) != width:
        check.fail(path, f"must be a list of {width} numbers, as row 0 is")
        return None
    values = [finite_float(v) for v in row]
    for j, v in enumerate(values):
        if v is None:
            check.fail(f"{path}/{j}", "must be a finite number")
    return values


LABEL_RULES = {  # loss: (the label as the loss takes it, or None; what a label must be)
    "hinge": (lambda v: v if v in (-1.0, 1.0) else None, "-1 or 1"),
    "bce": (lambda v: v if v in (0.0, 1.0) else None, "0 or 1"),
    "ce": (lambda v: int(v) if v >= 0 and v.is_integer() else None, "a class index (0, 1, ..)"),
    "mse": (lambda v: v, "a finite number"),
}


def _labels(check, y, loss):
    """The labels as the loss takes them, and the outputs they need (None if unknown)."""
    if loss is None:
        return y, None
    if loss == "mse" and y and isinstance(y[0], list):
        return _target_rows(check, y)
    fast = _good_labels(y, loss)
    if fast is not None:
        return fast
    convert, words = LABEL_RULES[loss]
    labels = []
    for i, v in enumerate(y):
        number = finite_float(v)
        label = None if number is None else convert(number)
        if label is None:
            check.fail(f"data/y/{i}", f"must be {words} for {loss}, not {v!r}")
        labels.append(label)
    if loss == "ce":
        return labels, max(2, 1 + max((c for c in labels if c is not None), default=0))
    return labels, 1


def _good_labels(y, loss):
    """_labels' answer when every label is good, found in a few passes in C; None when
    one is not (each is then checked on its own, to name it)."""
    array = finite_array(y)
    if array is None:
        return None
    if loss == "hinge" or loss == "bce":
        allowed = (-1.0, 1.0) if loss == "hinge" else (0.0, 1.0)
        return (array.tolist(), 1) if np.isin(array, allowed).all() else None
    if loss == "ce":
        if not ((array >= 0) & (array == np.floor(array)) & (array < 2**53)).all():
            return None
        labels = array.astype(np.int64).tolist()
        return labels, max(2, 1 + max(labels, default=0))
    return array.tolist(), 1  # mse: any finite number


def _target_rows(check, y):
    width = len(y[0])
    if not width:
        check.fail("data/y/0", "must be a non-empty list of numbers")
        return y, None
    return _rows(check, y, width, "data/y"), width


def _model(check, spec, shape, loss, max_parameters):
    section = check.section(spec, "model", ("inputs", "layers", "activation"))
    activation = check.choice(section, "activation", "model/activation", "relu", ACTIVATIONS)
    inputs = check.integer(section, "inputs", "model/inputs", shape.inputs, 1)
    if inputs is not None and shape.inputs is not None and inputs != shape.inputs:
        check.fail("model/inputs", f"the data has {shape.inputs} inputs per sample, not {inputs}")
    if "layers" in section:
        layers = _layers(check, section["layers"])
    else:
        layers = None if shape.outputs is None else [*HIDDEN_LAYERS, shape.outputs]
    if layers and shape.outputs is not None:
        _check_outputs(check, layers, shape, loss)
    count = None
    if layers and inputs is not None:
        count = parameter_count(inputs, layers)
        check.within(count, max_parameters, "model/layers", "parameters")
    return {"inputs": inputs, "layers": layers, "activation": activation}, count


def _layers(check, layers):
    if not isinstance(layers, list) or not layers:
        check.fail("model/layers", "must be a non-empty list of layer sizes")
        return None
    ok = True
    for i, units in enumerate(layers):
        if isinstance(units, bool) or not isinstance(units, int) or units < 1:
            check.fail(f"model/layers/{i}", "must be an integer of at least 1")
            ok = False
    return list(layers) if ok else None


def _check_outputs(check, layers, shape, loss):
    last, needed = layers[-1], shape.outputs
    if shape.at_least:
        if last < needed:
            check.fail(
                f"model/layers/{len(layers) - 1}",
                f"ce needs a last layer of at least {needed} units for these labels, not {last}",
            )
    elif last != needed:
        why = {"ce": f"{needed} classes", "mse": f"targets of width {needed}"}.get(loss, "")
        check.fail(
            f"model/layers/{len(layers) - 1}",
            f"{loss}{' with ' + why if why else ''} needs a last layer of {needed} "
            f"unit{'s' if needed > 1 else ''}, not {last}",
        )


def _optimizer(check, spec):
    if "optimizer" not in spec:
        return dict(DEMO_OPTIMIZER)
    section = spec["optimizer"]
    if not isinstance(section, dict):
        check.fail("optimizer", "must be an object")
        return None
    name = check.choice(section, "name", "optimizer/name", "sgd", tuple(OPTIMIZER_DEFAULTS))
    if name is None:
        return None
    defaults = OPTIMIZER_DEFAULTS[name]
    for key in section:
        if key != "name" and key not in defaults:
            known = any(key in d for d in OPTIMIZER_DEFAULTS.values())
            check.fail(f"optimizer/{key}", f"not an option of {name}" if known else "unknown field")
    rules = {
        "learning_rate": POSITIVE,
        "final_learning_rate": NON_NEGATIVE,
        "momentum": FRACTION,
        "beta1": FRACTION,
        "beta2": FRACTION,
        "eps": POSITIVE,
    }
    optimizer = {"name": name}
    for key, default in defaults.items():
        optimizer[key] = check.number(
            section,
            key,
            f"optimizer/{key}",
            default,
            rules[key],
            nullable=key == "final_learning_rate",
        )
    return optimizer


DEMO_SPEC = normalize_spec({})  # every default: an empty spec is micrograd's demo


def _webhook(check, spec):
    """The webhook's shape: a URL (the service judges where it points) and the events
    asked for, in WEBHOOK_EVENTS's order, `completed` always among them."""
    webhook = check.section(spec, "webhook", ("url", "events"))
    url = webhook.get("url")
    if not isinstance(url, str) or not 1 <= len(url) <= MAX_URL_LENGTH:
        check.fail("webhook/url", f"must be a URL of 1 to {MAX_URL_LENGTH} characters")
    events = webhook.get("events", ["completed"])
    if not isinstance(events, list):
        check.fail("webhook/events", "must be a list")
        events = []
    for i, event in enumerate(events):
        if event not in WEBHOOK_EVENTS:
            check.fail(f"webhook/events/{i}", f"must be one of {', '.join(WEBHOOK_EVENTS)}")
    asked = {e for e in events if e in WEBHOOK_EVENTS} | {"completed"}
    return {"url": url, "events": [e for e in WEBHOOK_EVENTS if e in asked]}
