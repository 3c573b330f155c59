"""engine.ops, the one table of ops: each row against the Value engine (its labels, its
floats), against central finite differences, and its numpy form against its float form."""

import math

import numpy as np
import pytest

from engine import Value
from engine.ops import BY_NAME, NAMES, OPS, op_of_label, sigmoid, sigmoid_array, value_label
from tests.gradcheck import close, numeric_grad

# Per op: operand lists that keep it finite, and the attribute's values to try.
OPERANDS = {
    "add": [[0.5, -1.25], [1.0, 2.0, -0.5, 3.0]],
    "mul": [[0.5, -1.25], [1.5, -2.0, 0.75]],
    "sub": [[0.5, -1.25]],
    "div": [[0.5, -1.25], [-3.0, 0.2]],
    "neg": [[1.5], [-0.25]],
    "pow": [[1.5], [0.3], [-1.2]],
    "relu": [[1.5], [-0.25]],
    "tanh": [[0.3], [-2.0]],
    "exp": [[0.3], [-2.0]],
    "log": [[0.3], [7.0]],
    "sigmoid": [[-40.0], [-1.0], [0.0], [2.5]],
}
EXPONENTS = [2, 3, -1, 0.5, 0]
COMPUTED = [op for op in OPS if op.name != "input"]


def _cases():
    for op in COMPUTED:
        for xs in OPERANDS[op.name]:
            ks = EXPONENTS if op.attr else [None]
            for k in ks:
                if xs[0] < 0 and k is not None and k != int(k):
                    continue  # no real answer
                yield pytest.param(op, xs, k, id=f"{op.name}-{xs}-{k}")


CASES = list(_cases())


def test_every_op_has_cases_and_the_names_are_graph1s():
    assert NAMES[0] == "input" and set(NAMES[1:]) == set(OPERANDS)
    assert all(BY_NAME[op.name] is op for op in OPS)
    assert [op.name for op in OPS if op.attr] == ["pow"] and BY_NAME["pow"].attr == "exponent"


@pytest.mark.parametrize("op, xs, k", CASES)
def test_value_engine_records_the_tables_label(op, xs, k):
    out = op.on_values([Value(x) for x in xs], k)
    assert out._op == value_label(op.name, k)
    if not op.derived:  # the way back, as to_graph and the tracer read a Value
        assert op_of_label(out._op) == (op.name, None if k is None else float(k))


def test_labels_that_no_op_makes_are_refused():
    with pytest.raises(ValueError, match="'sqrt'"):
        op_of_label("sqrt")
    assert op_of_label("") == ("input", None)  # a leaf


@pytest.mark.parametrize("op, xs, k", CASES)
def test_float_forms_give_the_value_engines_floats(op, xs, k):
    args = [Value(x) for x in xs]
    out = op.on_values(args, k)
    out.backward()
    y = op.forward(xs, k)
    assert y == out.data
    shares = op.backward(xs, y, 1.0, k)
    # n-ary mul multiplies the other operands in another order than a chain of *
    assert all(math.isclose(s, a.grad, rel_tol=1e-15) for s, a in zip(shares, args, strict=True))


@pytest.mark.parametrize("op, xs, k", CASES)
def test_backward_matches_finite_differences(op, xs, k):
    g = 0.75  # the output's gradient: each share scales with it
    shares = op.backward(xs, op.forward(xs, k), g, k)
    for i, share in enumerate(shares):
        numeric = g * numeric_grad(lambda v: op.forward(v, k), xs, i)
        assert close(share, numeric), (i, share, numeric)


@pytest.mark.parametrize("op, xs, k", CASES)
def test_numpy_forms_match_the_float_forms(op, xs, k):
    batch = np.array([[x, x * 0.5] for x in xs])  # each operand over a batch of two
    out = np.empty(2)
    op.forward_array(batch, out, k)
    halves = [x * 0.5 for x in xs]
    want = [op.forward(xs, k), op.forward(halves, k)]
    np.testing.assert_allclose(out, want, rtol=1e-15)
    g = np.array([1.0, -2.0])
    got = op.backward(batch, out, g, k)
    want = [op.backward(xs, want[0], 1.0, k), op.backward(halves, want[1], -2.0, k)]
    np.testing.assert_allclose(np.array(got, dtype=float).reshape(len(xs), 2), np.array(want).T)


def test_float_forward_raises_where_math_has_no_answer():
    for name, xs, k in [("log", [0.0], None), ("exp", [800.0], None), ("pow", [-8.0], 1 / 3)]:
        with pytest.raises((ArithmeticError, ValueError)):
            BY_NAME[name].forward(xs, k)


def test_a_slope_that_overflows_is_infinite_not_an_error():
    (share,) = BY_NAME["pow"].backward([0.0], 0.0, 1.0, 0.5)  # 0.5 * 0 ** -0.5
    assert share == math.inf
    assert not math.isfinite(BY_NAME["div"].backward([1.0, 1e-300], 1e300, 1.0, None)[1])


@pytest.mark.parametrize("x", [-1000.0, -40.0, -1.0, 0.0, 1e-9, 2.5, 40.0, 1000.0])
def test_sigmoid_is_stable_and_its_two_forms_agree(x):
    s = sigmoid(x)
    assert 0.0 <= s <= 1.0 and math.isfinite(s)
    assert close(s, 1.0 / (1.0 + math.exp(-x)) if x > -700 else 0.0)
    assert math.isclose(sigmoid_array(np.array([x]))[0], s, rel_tol=1e-15, abs_tol=1e-300)
    assert Value(x).sigmoid().data == s
