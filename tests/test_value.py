import gc
import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from engine import NumericError, Value
from engine.value import paused_gc
from tests.gradcheck import close, numeric_grad


def micrograd_readme_expression(a, b):
    c = a + b
    d = a * b + b**3
    c += c + 1
    c += 1 + c + (-a)
    d += d * 2 + (b + a).relu()
    d += 3 * d + (b - a).relu()
    e = c - d
    f = e**2
    g = f / 2.0
    g += 10.0 / f
    return g


def test_micrograd_readme_figures():
    a, b = Value(-4.0), Value(2.0)
    g = micrograd_readme_expression(a, b)
    g.backward()
    assert round(g.data, 4) == 24.7041
    assert round(a.grad, 4) == 138.8338
    assert round(b.grad, 4) == 645.5773


def test_micrograd_readme_grads_match_finite_differences():
    a, b = Value(-4.0), Value(2.0)
    micrograd_readme_expression(a, b).backward()

    def f(xs):
        return micrograd_readme_expression(Value(xs[0]), Value(xs[1])).data

    assert close(a.grad, numeric_grad(f, [-4.0, 2.0], 0))
    assert close(b.grad, numeric_grad(f, [-4.0, 2.0], 1))


UNARY = {
    "relu": (lambda x: x.relu(), [-1.5, 0.7]),
    "tanh": (lambda x: x.tanh(), [-2.0, 0.3]),
    "exp": (lambda x: x.exp(), [-3.0, 1.2]),
    "log": (lambda x: x.log(), [0.2, 7.0]),
    "sigmoid": (lambda x: x.sigmoid(), [-40.0, -1.0, 2.5]),
    "neg": (lambda x: -x, [3.0]),
    "pow 3": (lambda x: x**3, [-1.3, 2.0]),
    "pow -2": (lambda x: x**-2, [-0.7, 1.5]),
    "pow 0.5": (lambda x: x**0.5, [0.3, 4.0]),
    "pow 0": (lambda x: x**0, [2.0]),
    "radd": (lambda x: 2 + x, [1.0]),
    "rsub": (lambda x: 1 - x, [1.0]),
    "rmul": (lambda x: 2 * x, [1.0]),
    "rdiv": (lambda x: 10.0 / x, [-2.0, 0.5]),
}


@pytest.mark.parametrize("name", UNARY)
def test_unary_op_grad_matches_finite_differences(name):
    op, points = UNARY[name]
    for x0 in points:
        x = Value(x0)
        op(x).backward()
        assert close(x.grad, numeric_grad(lambda xs: op(Value(xs[0])).data, [x0], 0)), x0


BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
}


@pytest.mark.parametrize("name", BINARY)
def test_binary_op_grads_match_finite_differences(name):
    op = BINARY[name]
    a, b = Value(1.7), Value(-0.6)
    op(a, b).backward()
    f = lambda xs: op(Value(xs[0]), Value(xs[1])).data  # noqa: E731
    assert close(a.grad, numeric_grad(f, [1.7, -0.6], 0))
    assert close(b.grad, numeric_grad(f, [1.7, -0.6], 1))


def test_reused_operand_accumulates_and_keeps_operand_order():
    a = Value(3.0)
    square = a * a
    assert square._prev == (a, a)  # micrograd's set of children would merge them
    (square + a).backward()
    assert a.grad == 2 * 3.0 + 1


def test_subtraction_and_division_keep_operand_order():
    a, b = Value(5.0), Value(2.0)
    assert (a - b).data == 3.0 and (b - a).data == -3.0
    assert (a / b).data == 2.5 and (b / a).data == 0.4


def test_backward_twice_accumulates_like_micrograd():
    x = Value(2.0)
    y = x * x
    y.backward()
    y.backward()
    assert x.grad == 8.0


def test_million_node_chain_backpropagates():
    n, k0 = 1_000_000, 1.000001
    x, k = Value(0.5), Value(k0)
    with paused_gc():
        y = x
        for _ in range(n):
            y = y * k
        y.backward()
    assert math.isclose(x.grad, k0**n, rel_tol=1e-9)
    assert math.isclose(k.grad, n * 0.5 * k0 ** (n - 1), rel_tol=1e-9)


def test_graphs_have_no_reference_cycles():
    gc.collect()
    with paused_gc():
        a, b = Value(1.0), Value(2.0)
        g = micrograd_readme_expression(a, b)
        g.backward()
        del g
    assert gc.collect() == 0  # nothing unreachable was left for the cyclic collector


def test_paused_gc_restores_the_collector():
    assert gc.isenabled()
    with paused_gc():
        assert not gc.isenabled()
    assert gc.isenabled()


@pytest.mark.parametrize(
    "build, op",
    [
        (lambda: Value(0.0).log(), "log"),
        (lambda: Value(-1.0).log(), "log"),
        (lambda: Value(0.0) ** -1, "pow"),
        (lambda: Value(-8.0) ** (1 / 3), "pow"),
        (lambda: Value(10.0) ** 400, "pow"),
        (lambda: Value(1000.0).exp(), "exp"),
        (lambda: Value(1e200) * Value(1e200), "mul"),
        (lambda: Value(1e308) + Value(1e308), "add"),
        (lambda: Value(1.0) / Value(0.0), "pow"),
    ],
)
def test_math_without_finite_answer_raises_naming_the_op(build, op):
    with pytest.raises(NumericError) as info:
        build()
    assert info.value.op == op


def test_non_finite_gradient_raises():
    x = Value(0.0)
    y = x**0.5  # finite value, infinite slope
    with pytest.raises(NumericError, match="gradient"):
        y.backward()


def test_exponent_must_be_a_finite_number():
    with pytest.raises(TypeError):
        Value(2.0) ** Value(2.0)
    with pytest.raises(ValueError):
        Value(2.0) ** math.inf


# Random expressions: smooth ops on three leaves, compared with central differences.
LEAVES = 3


def expressions(depth=4):
    leaf = st.integers(0, LEAVES - 1).map(lambda i: ("leaf", i))
    return st.recursive(
        leaf,
        lambda sub: st.one_of(
            st.tuples(st.sampled_from(["add", "sub", "mul"]), sub, sub),
            st.tuples(
                st.sampled_from(["tanh", "sigmoid", "relu", "neg", "square", "softlog"]), sub
            ),
        ),
        max_leaves=12,
    )


def build(expr, xs, kinks):
    kind = expr[0]
    if kind == "leaf":
        return xs[expr[1]]
    args = [build(e, xs, kinks) for e in expr[1:]]
    if kind == "add":
        return args[0] + args[1]
    if kind == "sub":
        return args[0] - args[1]
    if kind == "mul":
        return args[0] * args[1]
    if kind == "neg":
        return -args[0]
    if kind == "square":
        return args[0] ** 2
    if kind == "softlog":
        return (1 + args[0] * args[0]).log()
    if kind == "relu":
        kinks.append(args[0].data)
    return getattr(args[0], kind)()


@settings(max_examples=150, deadline=None)
@given(expressions(), st.lists(st.floats(-2, 2), min_size=LEAVES, max_size=LEAVES))
def test_random_expressions_match_finite_differences(expr, xs0):
    kinks = []
    xs = [Value(x) for x in xs0]
    out = build(expr, xs, kinks)
    assume(all(abs(k) > 1e-3 for k in kinks))  # central differences are wrong at a kink
    out.backward()
    f = lambda p: build(expr, [Value(x) for x in p], [])  # noqa: E731
    for i in range(LEAVES):
        assert close(xs[i].grad, numeric_grad(lambda p: f(p).data, xs0, i), 1e-4)
