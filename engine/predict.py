"""A trained model's outputs for new inputs: the MLP's forward pass, vectorized with numpy
(the weights are known, so no graph is needed)."""

import numpy as np

from .errors import NumericError
from .numbers import finite_float
from .ops import sigmoid_array

_ACTIVATIONS = {
    "relu": lambda h: np.maximum(h, 0.0),
    "tanh": np.tanh,
    "sigmoid": sigmoid_array,
    "linear": lambda h: h,
}


def _softmax(Z):
    e = np.exp(Z - Z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def parameter_count(model):
    sizes = [model["inputs"], *model["layers"]]
    return sum((sizes[i] + 1) * sizes[i + 1] for i in range(len(model["layers"])))


def forward(model, parameters, X):
    """The (n, outputs) outputs of an MLP (`model` = {inputs, layers, activation}) whose
    parameters come in MLP.parameters() order: per layer, per neuron, its weights then bias."""
    params = np.asarray(parameters, dtype=np.float64)
    activation = _ACTIVATIONS[model["activation"]]
    H, offset, nin = X, 0, model["inputs"]
    with np.errstate(over="ignore", invalid="ignore"):
        for i, nout in enumerate(model["layers"]):
            block = params[offset : offset + nout * (nin + 1)].reshape(nout, nin + 1)
            H = H @ block[:, :nin].T + block[:, nin]
            if i < len(model["layers"]) - 1:
                H = activation(H)
            offset += nout * (nin + 1)
            nin = nout
    return H


def _inputs(x, width):
    """x as an (n, width) array, or ValueError naming the first bad place."""
    if not isinstance(x, list) or not x:
        raise ValueError("x: must be a non-empty list of rows of numbers")
    for i, row in enumerate(x):
        if not isinstance(row, list) or len(row) != width:
            raise ValueError(f"x/{i}: must be a list of {width} numbers, as the model takes")
        for j, v in enumerate(row):
            if finite_float(v) is None:
                raise ValueError(f"x/{i}/{j}: must be a finite number, not {v!r}")
    return np.array(x, dtype=np.float64)


def predict(model_doc, x):
    """{"y": the outputs per sample (a number each if the model has one output, else a
    list)}, plus "probabilities" for ce (softmax, a list per sample) and bce (sigmoid)."""
    model, loss = model_doc["model"], model_doc["loss"]
    parameters = model_doc["parameters"]
    if len(parameters) != parameter_count(model):
        raise ValueError(
            f"the model needs {parameter_count(model)} parameters, not {len(parameters)}"
        )
    Z = forward(model, parameters, _inputs(x, model["inputs"]))
    finite = np.isfinite(Z).all(axis=1)
    if not finite.all():
        row = int(np.argmin(finite))
        raise NumericError(f"x/{row}: the model's outputs for this row are not finite")
    single = Z.shape[1] == 1
    result = {"y": Z[:, 0].tolist() if single else Z.tolist()}
    if loss == "ce":
        result["probabilities"] = _softmax(Z).tolist()
    elif loss == "bce":
        result["probabilities"] = sigmoid_array(Z[:, 0]).tolist()
    return result
