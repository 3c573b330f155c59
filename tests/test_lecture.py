"""Karpathy's micrograd lectures, their snippets verbatim, on gradserve's engine: labels,
backprop by hand with `_backward()`, micrograd 0.1.0's nn spellings and its seeded weights,
the lecture's training loop, and examples/lecture.py."""

import gc
import math
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from engine import MLP, Layer, Neuron, Value, train
from engine.value import paused_gc

ROOT = Path(__file__).resolve().parent.parent


def lecture_neuron():
    """The lecture's neuron, built and labelled as the lecture writes it."""
    # inputs x1,x2
    x1 = Value(2.0, label="x1")
    x2 = Value(0.0, label="x2")
    # weights w1,w2
    w1 = Value(-3.0, label="w1")
    w2 = Value(1.0, label="w2")
    # bias of the neuron
    b = Value(6.8813735870195432, label="b")
    # x1*w1 + x2*w2 + b
    x1w1 = x1 * w1
    x1w1.label = "x1*w1"
    x2w2 = x2 * w2
    x2w2.label = "x2*w2"
    x1w1x2w2 = x1w1 + x2w2
    x1w1x2w2.label = "x1*w1 + x2*w2"
    n = x1w1x2w2 + b
    n.label = "n"
    o = n.tanh()
    o.label = "o"
    return {v.label: v for v in (x1, x2, w1, w2, b, x1w1, x2w2, x1w1x2w2, n, o)}


# Hand-derived: o = tanh(n) = 1/sqrt(2), do/dn = 1 - o**2 = 0.5, which + passes on
# unchanged and * scales by the other operand.
LECTURE_GRADS = {
    "o": 1.0,
    "n": 0.5,
    "b": 0.5,
    "x1*w1 + x2*w2": 0.5,
    "x1*w1": 0.5,
    "x2*w2": 0.5,
    "x1": -1.5,
    "w1": 1.0,
    "x2": 0.5,
    "w2": 0.0,
}


def assert_lecture_grads(v):
    for label, grad in LECTURE_GRADS.items():
        assert math.isclose(v[label].grad, grad, abs_tol=1e-6), label


def test_labels_as_the_first_lecture_gives_them():
    a = Value(2.0, label="a")
    b = Value(-3.0, label="b")
    c = Value(10.0, label="c")
    e = a * b
    e.label = "e"
    d = e + c
    d.label = "d"
    f = Value(-2.0, label="f")
    L = d * f
    L.label = "L"
    assert (a.label, e.label, L.label, L.data) == ("a", "e", "L", -8.0)
    assert Value(1.0).label == "" and repr(a) == "Value(data=2.0, grad=0.0)"
    L.backward()
    # the lecture's figures, derived there by hand
    assert (L.grad, f.grad, d.grad, c.grad, e.grad, a.grad, b.grad) == (1, 4, -2, -2, -2, 6, -4)


def test_backprop_by_hand_with_backward_node_by_node():
    v = lecture_neuron()
    o, n, b = v["o"], v["n"], v["b"]
    x1w1x2w2, x2w2, x1w1 = v["x1*w1 + x2*w2"], v["x2*w2"], v["x1*w1"]
    assert round(n.data, 4) == 0.8814 and round(o.data, 4) == 0.7071
    # as the lecture calls them
    o.grad = 1.0
    o._backward()
    assert math.isclose(n.grad, 0.5, abs_tol=1e-6)
    n._backward()
    b._backward()
    x1w1x2w2._backward()
    x2w2._backward()
    x1w1._backward()
    assert_lecture_grads(v)


def test_backward_gives_the_same_gradients_as_the_manual_chain():
    v = lecture_neuron()
    v["o"].backward()
    assert_lecture_grads(v)


def test_manual_backward_propagates_once_per_call_and_a_leaf_has_none():
    a, b = Value(3.0, label="a"), Value(4.0)
    c = a * b
    c.grad = 2.0
    c._backward()
    assert (a.grad, b.grad) == (8.0, 6.0)
    c._backward()  # a second call adds again, as in the lecture's engine
    assert (a.grad, b.grad) == (16.0, 12.0)
    a._backward()  # a leaf has nothing to pass on
    assert (a.grad, b.grad) == (16.0, 12.0)


def test_the_lectures_tanh_from_exp_gives_the_same_gradients():
    v = lecture_neuron()
    n = v["n"]
    # ----
    e = (2 * n).exp()
    o = (e - 1) / (e + 1)
    # ----
    o.label = "o"
    o.backward()
    assert round(o.data, 4) == 0.7071
    for label in ("x1", "w1", "x2", "w2"):
        assert math.isclose(v[label].grad, LECTURE_GRADS[label], abs_tol=1e-6)


def test_labelled_graphs_backpropagated_by_hand_have_no_reference_cycles():
    gc.collect()
    with paused_gc():
        v = lecture_neuron()
        v["o"].grad = 1.0
        for label in ("o", "n", "x1*w1 + x2*w2", "x2*w2", "x1*w1"):
            v[label]._backward()
        del v
    assert gc.collect() == 0


def test_the_lectures_own_draw_dot_pasted_in_works():
    # verbatim from the lecture's notebook
    from graphviz import Digraph

    def trace(root):
        # builds a set of all nodes and edges in a graph
        nodes, edges = set(), set()

        def build(v):
            if v not in nodes:
                nodes.add(v)
                for child in v._prev:
                    edges.add((child, v))
                    build(child)

        build(root)
        return nodes, edges

    def draw_dot(root):
        dot = Digraph(format="svg", graph_attr={"rankdir": "LR"})  # LR = left to right

        nodes, edges = trace(root)
        for n in nodes:
            uid = str(id(n))
            # for any value in the graph, create a rectangular ('record') node for it
            label = "{ %s | data %.4f | grad %.4f }" % (n.label, n.data, n.grad)  # noqa: UP031
            dot.node(name=uid, label=label, shape="record")
            if n._op:
                # if this value is a result of some operation, create an op node for it
                dot.node(name=uid + n._op, label=n._op)
                # and connect this node to it
                dot.edge(uid + n._op, uid)

        for n1, n2 in edges:
            # connect n1 to the op node of n2
            dot.edge(str(id(n1)), str(id(n2)) + n2._op)

        return dot

    v = lecture_neuron()
    v["o"].backward()
    source = draw_dot(v["o"]).source
    assert "{ x1 | data 2.0000 | grad -1.5000 }" in source
    assert "{ o | data 0.7071 | grad 1.0000 }" in source
    assert source.count("shape=record") == 10


def test_micrograd_spells_a_linear_neuron_nonlin_false():
    x = [Value(1.0), Value(-2.0), Value(0.5)]
    random.seed(0)
    linear = Neuron(3, nonlin=False)
    linear.w = [Value(-1.0), Value(1.0), Value(0.0)]
    assert linear(x).data == -3.0  # no relu: the negative sum comes through
    assert repr(linear) == "LinearNeuron(3)"
    relu = Neuron(3, nonlin=True)
    relu.w = linear.w
    assert relu(x).data == 0.0 and relu.activation == "relu"
    assert Neuron(3, False).activation == "linear"  # micrograd's positional form
    assert [n.activation for n in Layer(3, 2, nonlin=False).neurons] == ["linear"] * 2
    assert Neuron(3).activation == "relu" and Neuron(3, activation="tanh").activation == "tanh"
    with pytest.raises(TypeError, match="activation= or nonlin="):
        Neuron(3, activation="tanh", nonlin=False)


# Hand-copied from micrograd 0.1.0: random.seed(1337); MLP(2, [16, 16, 1]).parameters().
MICROGRAD_1337_FIRST = [0.23550571390294128, 0.06653114721000164, 0.0, -0.26830328150124894]
MICROGRAD_1337_LAST = [-0.3223491002609964, -0.2532524374373504, 0.0]


def test_random_seed_1337_gives_micrograds_very_weights():
    random.seed(1337)
    params = [p.data for p in MLP(2, [16, 16, 1]).parameters()]
    assert len(params) == 337
    assert params[:4] == MICROGRAD_1337_FIRST
    assert params[-3:] == MICROGRAD_1337_LAST
    random.seed(1337)
    assert [p.data for p in MLP(2, [16, 16, 1]).parameters()] == params
    # without a seed in between, the global generator moves on
    assert [p.data for p in MLP(2, [16, 16, 1]).parameters()] != params


def test_training_keeps_its_own_seeded_generator():
    spec = {"model": {"inputs": 2, "layers": [4, 1]}, "steps": 3, "engine": "reference"}
    random.seed(1)
    first = train(spec).loss
    random.seed(2)
    random.random()
    assert train(spec).loss == first
    assert train(dict(spec, engine="compiled")).loss == pytest.approx(first, rel=1e-9)


def test_the_lectures_training_loop():
    random.seed(1337)
    n = MLP(3, [4, 4, 1], activation="tanh")
    xs = [
        [2.0, 3.0, -1.0],
        [3.0, -1.0, 0.5],
        [0.5, 1.0, 1.0],
        [1.0, 1.0, -1.0],
    ]
    ys = [1.0, -1.0, -1.0, 1.0]  # desired targets
    assert len(n.parameters()) == 41
    losses = []
    for _ in range(20):
        # forward pass
        ypred = [n(x) for x in xs]
        loss = sum((yout - ygt) ** 2 for ygt, yout in zip(ys, ypred, strict=True))
        # backward pass
        for p in n.parameters():
            p.grad = 0.0
        loss.backward()
        # update
        for p in n.parameters():
            p.data += -0.05 * p.grad
        losses.append(loss.data)
    assert losses[-1] < 0.01 * losses[0]
    assert [round(y.data) for y in ypred] == [1, -1, -1, 1]


def test_examples_lecture_runs_and_its_loss_falls(tmp_path):
    picture = tmp_path / "neuron.dot"
    run = subprocess.run(
        [sys.executable, "examples/lecture.py", str(picture)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "x1.grad=-1.5000" in out and "w1.grad=1.0000" in out and "w2.grad=0.0000" in out
    assert "same gradients: True" in out
    assert "{ o | data 0.7071 | grad 1.0000 }" in picture.read_text()
    losses = [float(x) for x in re.findall(r"^step \d+ loss (\S+)$", out, re.M)]
    assert len(losses) == 20
    assert losses[-1] < 0.01 * losses[0]
    assert sum(b < a for a, b in zip(losses, losses[1:], strict=False)) >= 17
