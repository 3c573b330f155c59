"""The ops of graph/1, each defined once (after tinygrad's ops table).

A row is everything there is to know about an op: its graph/1 name, how many inputs it
takes, its one attribute if it has one (pow's exponent), the label the Value engine
records in `_op`, and the op itself, four ways:

- `on_values(args, k)`: on Values, as the reference engine builds it;
- `forward(xs, k)`: on Python floats, the Value engine's floats exactly (math.tanh, not
  numpy's); where math has no answer it raises ArithmeticError or ValueError;
- `forward_array(xs, out, k)`: a group of nodes over a batch with numpy, written into out;
- `backward(xs, y, g, k)`: the local derivative as the chain rule uses it, each operand's
  share of the gradient g of the output y, in the Value engine's order of floating-point
  operations. The same code serves floats and numpy arrays.

xs[p] is operand p, k the attribute's value (None for an op without one). The parser, the
compiled path and the schemas read this table. `value.py` keeps micrograd's shape and
spells its labels itself; tests hold them to the table.
"""

import math
import operator
from collections.abc import Callable
from functools import reduce
from typing import NamedTuple

import numpy as np

from .errors import NumericError

# --- the stable sigmoid: written per sign so that exp never overflows ---


def sigmoid(x):
    """1 / (1 + e^-x) of a float."""
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def sigmoid_array(x):
    """1 / (1 + e^-x) of each entry of an array, by `sigmoid`'s formula (numpy's exp)."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


class Op(NamedTuple):
    name: str  # in graph/1
    min_inputs: int
    max_inputs: int | None  # None: any number, folded left to right
    label: str  # the Value engine's _op of the result; pow's is "**k"
    attr: str | None = None  # the name of its one attribute
    derived: bool = False  # Value builds it of other ops (sub = a + -b): `label` is theirs
    on_values: Callable | None = None
    forward: Callable | None = None
    forward_array: Callable | None = None
    backward: Callable | None = None


# --- helpers of the rows below ---


def _power(x, k):
    """x ** k, infinite where the float overflows (a float pow raises; numpy's does not)."""
    try:
        return x**k
    except (OverflowError, ZeroDivisionError):
        return math.inf


def _real_power(xs, k):
    x = xs[0]
    if x < 0.0 and k != int(k):  # Python's answer would be a complex number
        raise ValueError(f"a negative base ({x}) to a fractional power ({k})")
    return x**k


def _divide_values(args, k):
    if args[1].data == 0.0:  # the Value engine would blame its pow (b ** -1)
        raise NumericError("division by zero", op="div")
    return args[0] / args[1]


def _fold_array(ufunc):
    def forward(xs, out, k):
        # Stacked operands reduce over axis 0 left to right, as a loop would; but numpy
        # sums a lone row (one node, a batch of one) pairwise: that one takes the loop.
        if isinstance(xs, np.ndarray) and out.size > 1:
            ufunc.reduce(xs, axis=0, out=out)
            return
        ufunc(xs[0], xs[1], out=out)
        for x in xs[2:]:
            ufunc(out, x, out=out)

    return forward


def _unary_array(fn):
    def forward(xs, out, k):
        fn(xs[0], out=out)

    return forward


def _mul_backward(xs, y, g, k):
    n = len(xs)
    if n == 2:
        return [g * xs[1], g * xs[0]]
    # d/dx_i is the product of the others: running products from the left and the right
    left, right = [None] * n, [None] * n
    for i in range(1, n):
        left[i] = xs[0] if i == 1 else left[i - 1] * xs[i - 1]
    for i in range(n - 2, -1, -1):
        right[i] = xs[n - 1] if i == n - 2 else xs[i + 1] * right[i + 1]
    return [
        g * (right[i] if left[i] is None else left[i] if right[i] is None else left[i] * right[i])
        for i in range(n)
    ]


def _div_backward(xs, y, g, k):  # as the Value engine's a * b**-1
    a, b = xs
    return [g * _power(b, -1.0), (-1.0 * _power(b, -2.0)) * (a * g)]


def _pow_backward(xs, y, g, k):
    return [k * _power(xs[0], k - 1) * g if k != 0 else 0.0 * g]


# --- the table ---

INPUT = Op("input", 0, 0, "")  # a leaf: its value is the node's own
ADD = Op(
    "add",
    2,
    None,
    "+",
    on_values=lambda args, k: reduce(operator.add, args),
    forward=lambda xs, k: reduce(operator.add, xs),
    forward_array=_fold_array(np.add),
    backward=lambda xs, y, g, k: [g] * len(xs),
)
MUL = Op(
    "mul",
    2,
    None,
    "*",
    on_values=lambda args, k: reduce(operator.mul, args),
    forward=lambda xs, k: reduce(operator.mul, xs),
    forward_array=_fold_array(np.multiply),
    backward=_mul_backward,
)
SUB = Op(
    "sub",
    2,
    2,
    "+",
    derived=True,
    on_values=lambda args, k: args[0] - args[1],
    forward=lambda xs, k: xs[0] - xs[1],
    forward_array=lambda xs, out, k: np.subtract(xs[0], xs[1], out=out),
    backward=lambda xs, y, g, k: [g, -g],
)
DIV = Op(
    "div",
    2,
    2,
    "*",
    derived=True,
    on_values=_divide_values,
    forward=lambda xs, k: xs[0] * xs[1] ** -1.0,
    forward_array=lambda xs, out, k: np.multiply(xs[0], 1.0 / xs[1], out=out),
    backward=_div_backward,
)
NEG = Op(
    "neg",
    1,
    1,
    "*",
    derived=True,
    on_values=lambda args, k: -args[0],
    forward=lambda xs, k: -xs[0],
    forward_array=_unary_array(np.negative),
    backward=lambda xs, y, g, k: [-g],
)
POW = Op(
    "pow",
    1,
    1,
    "**",
    attr="exponent",
    on_values=lambda args, k: args[0] ** k,
    forward=_real_power,
    forward_array=lambda xs, out, k: np.power(xs[0], k, out=out),
    backward=_pow_backward,
)
RELU = Op(
    "relu",
    1,
    1,
    "ReLU",
    on_values=lambda args, k: args[0].relu(),
    forward=lambda xs, k: xs[0] if xs[0] > 0 else 0.0,
    forward_array=lambda xs, out, k: np.maximum(xs[0], 0.0, out=out),
    backward=lambda xs, y, g, k: [g * (xs[0] > 0)],
)
TANH = Op(
    "tanh",
    1,
    1,
    "tanh",
    on_values=lambda args, k: args[0].tanh(),
    forward=lambda xs, k: math.tanh(xs[0]),
    forward_array=_unary_array(np.tanh),
    backward=lambda xs, y, g, k: [(1.0 - y * y) * g],
)
EXP = Op(
    "exp",
    1,
    1,
    "exp",
    on_values=lambda args, k: args[0].exp(),
    forward=lambda xs, k: math.exp(xs[0]),
    forward_array=_unary_array(np.exp),
    backward=lambda xs, y, g, k: [y * g],
)
LOG = Op(
    "log",
    1,
    1,
    "log",
    on_values=lambda args, k: args[0].log(),
    forward=lambda xs, k: math.log(xs[0]),
    forward_array=_unary_array(np.log),
    backward=lambda xs, y, g, k: [g / xs[0]],
)
SIGMOID = Op(
    "sigmoid",
    1,
    1,
    "sigmoid",
    on_values=lambda args, k: args[0].sigmoid(),
    forward=lambda xs, k: sigmoid(xs[0]),
    forward_array=lambda xs, out, k: np.copyto(out, sigmoid_array(xs[0])),
    backward=lambda xs, y, g, k: [y * (1.0 - y) * g],
)

OPS = (INPUT, ADD, MUL, SUB, DIV, NEG, POW, RELU, TANH, EXP, LOG, SIGMOID)
NAMES = tuple(op.name for op in OPS)
BY_NAME = {op.name: op for op in OPS}
# The label of each op Value records itself; an op with an attribute adds its value.
_BY_LABEL = {op.label: op for op in OPS if not op.derived and op.attr is None}
_LABEL_PREFIXES = [op for op in OPS if op.attr is not None]


def value_label(name, k=None):
    """The Value engine's _op of a node of op `name` ("" for a leaf, "**2" for pow 2)."""
    op = BY_NAME[name]
    return op.label if op.attr is None else f"{op.label}{k}"


def op_of_label(label):
    """(graph/1 op, attribute value or None) of a Value's _op label: "**2" is ("pow", 2.0)."""
    op = _BY_LABEL.get(label)
    if op is not None:
        return op.name, None
    for op in _LABEL_PREFIXES:
        if label.startswith(op.label):
            return op.name, float(label[len(op.label) :])
    raise ValueError(f"no graph/1 op makes a Value labelled {label!r}")
