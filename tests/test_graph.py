import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import GraphError, NumericError, Value
from engine.graph import (
    _parse_nodes,
    _parse_valid_nodes,
    evaluate,
    evaluate_on_values,
    parse_graph,
    to_graph,
)
from tests.gradcheck import close, numeric_grad
from tests.test_value import LEAVES, build, expressions, micrograd_readme_expression

CONTRACT_EXAMPLE = {
    "format": "graph/1",
    "nodes": [
        {"id": "a", "op": "input", "value": -4.0},
        {"id": "b", "op": "input", "value": 2.0},
        {"id": "c", "op": "add", "inputs": ["a", "b"]},
        {"id": "p", "op": "pow", "inputs": ["b"], "attrs": {"exponent": 3}},
    ],
    "output": "p",
}


def inputs(**values):
    return [{"id": k, "op": "input", "value": v} for k, v in values.items()]


def test_contract_example_evaluates():
    result = evaluate(CONTRACT_EXAMPLE)
    assert result["output"] == "p" and result["value"] == 8.0
    assert result["values"] == {"a": -4.0, "b": 2.0, "c": -2.0, "p": 8.0}
    assert result["grads"] == {"a": 0.0, "b": 12.0, "c": 0.0, "p": 1.0}


def test_format_is_optional_and_output_defaults_to_the_last_node():
    doc = {"nodes": inputs(x=3.0) + [{"id": "y", "op": "mul", "inputs": ["x", "x"]}]}
    result = evaluate(doc)
    assert result["output"] == "y" and result["value"] == 9.0 and result["grads"]["x"] == 6.0


def test_micrograd_readme_figures_through_graph_format():
    a, b = Value(-4.0), Value(2.0)
    doc = to_graph(micrograd_readme_expression(a, b), names={"a": a, "b": b})
    result = evaluate(json.loads(json.dumps(doc)))
    assert round(result["value"], 4) == 24.7041
    assert round(result["grads"]["a"], 4) == 138.8338
    assert round(result["grads"]["b"], 4) == 645.5773


def test_nary_add_and_mul():
    doc = {
        "nodes": inputs(x=2.0, y=3.0, z=5.0)
        + [
            {"id": "s", "op": "add", "inputs": ["x", "y", "z", "x"]},
            {"id": "m", "op": "mul", "inputs": ["x", "y", "z", "s"]},
        ]
    }
    r = evaluate(doc)
    assert r["values"]["s"] == 12.0 and r["values"]["m"] == 360.0
    # m = x*y*z*(2x + y + z): dm/dx = y*z*s + x*y*z*2
    assert r["grads"]["x"] == 3 * 5 * 12 + 2 * 3 * 5 * 2
    assert r["grads"]["s"] == 30.0


OPS = [
    ("sub", 2),
    ("div", 2),
    ("neg", 1),
    ("relu", 1),
    ("tanh", 1),
    ("exp", 1),
    ("log", 1),
    ("sigmoid", 1),
    ("add", 3),
    ("mul", 3),
]


@pytest.mark.parametrize("op, arity", OPS)
def test_each_op_grads_match_finite_differences(op, arity):
    xs0 = [1.3, 0.4, -0.8][:arity]
    names = ["x0", "x1", "x2"][:arity]

    def doc(xs):
        return {
            "nodes": [{"id": n, "op": "input", "value": x} for n, x in zip(names, xs, strict=True)]
            + [{"id": "out", "op": op, "inputs": names}]
        }

    result = evaluate(doc(xs0))
    for i, name in enumerate(names):
        expected = numeric_grad(lambda xs: evaluate(doc(xs))["value"], xs0, i)
        assert close(result["grads"][name], expected), name


def test_pow_grad_matches_finite_differences():
    def doc(xs):
        return {
            "nodes": inputs(x=xs[0])
            + [{"id": "y", "op": "pow", "inputs": ["x"], "attrs": {"exponent": -1.5}}]
        }

    result = evaluate(doc([0.7]))
    assert close(
        result["grads"]["x"], numeric_grad(lambda xs: evaluate(doc(xs))["value"], [0.7], 0)
    )


def test_nodes_off_the_output_path_have_zero_grad():
    doc = {
        "nodes": inputs(x=1.0, y=2.0) + [{"id": "z", "op": "exp", "inputs": ["y"]}],
        "output": "x",
    }
    r = evaluate(doc)
    assert r["grads"] == {"x": 1.0, "y": 0.0, "z": 0.0}
    assert r["values"]["z"] == math.exp(2.0)


def node(i, **fields):
    return {"id": f"n{i}", **fields}


BAD_GRAPHS = [
    ([], "", "a graph is a JSON object"),
    ({"nodes": inputs(x=1.0), "extra": 1}, "extra", "unknown field"),
    ({"format": "graph/2", "nodes": inputs(x=1.0)}, "format", "unknown format"),
    ({"nodes": []}, "nodes", "non-empty list"),
    ({}, "nodes", "non-empty list"),
    ({"nodes": "abc"}, "nodes", "non-empty list"),
    ({"nodes": [3]}, "nodes/0", "a node is a JSON object"),
    ({"nodes": [{"id": "", "op": "input", "value": 1}]}, "nodes/0/id", "1 to 64"),
    ({"nodes": [{"id": "x" * 65, "op": "input", "value": 1}]}, "nodes/0/id", "1 to 64"),
    ({"nodes": [{"id": "a b", "op": "input", "value": 1}]}, "nodes/0/id", "1 to 64"),
    ({"nodes": [{"id": 7, "op": "input", "value": 1}]}, "nodes/0/id", "1 to 64"),
    ({"nodes": [{"id": "a\nb", "op": "input", "value": 1}]}, "nodes/0/id", "1 to 64"),
    (
        {"nodes": inputs(a=1.0) + [{"id": "b\n", "op": "neg", "inputs": ["a"]}]},
        "nodes/1/id",
        "1 to 64",
    ),
    ({"nodes": inputs(x=1.0) + inputs(x=2.0)}, "nodes/1/id", "duplicate id 'x'"),
    ({"nodes": [{"id": "x", "op": {}, "value": 1.0}]}, "nodes/0/op", "unknown op {}"),
    (
        {"nodes": inputs(x=1.0) + [{"id": "y", "op": ["neg"], "inputs": ["x"], "attrs": {"k": 1}}]},
        "nodes/1/op",
        "unknown op ['neg']",
    ),
    (
        {"nodes": inputs(x=1.0) + [{"id": "y", "op": "sqrt", "inputs": ["x"]}]},
        "nodes/1/op",
        "unknown op 'sqrt'",
    ),
    (
        {"nodes": inputs(x=1.0) + [{"id": "y", "op": "add", "inputs": ["x"]}]},
        "nodes/1/inputs",
        "add takes 2 or more inputs, not 1",
    ),
    (
        {"nodes": inputs(x=1.0) + [{"id": "y", "op": "sub", "inputs": ["x", "x", "x"]}]},
        "nodes/1/inputs",
        "sub takes 2 inputs, not 3",
    ),
    (
        {"nodes": inputs(x=1.0) + [{"id": "y", "op": "neg", "inputs": ["x", "x"]}]},
        "nodes/1/inputs",
        "neg takes 1 input, not 2",
    ),
    (
        {"nodes": inputs(x=1.0) + [{"id": "y", "op": "input", "value": 1, "inputs": ["x"]}]},
        "nodes/1/inputs",
        "input takes no inputs, not 1",
    ),
    (
        {"nodes": inputs(x=1.0) + [{"id": "y", "op": "neg", "inputs": "x"}]},
        "nodes/1/inputs",
        "list of node ids",
    ),
    (
        {"nodes": inputs(x=1.0) + [{"id": "y", "op": "add", "inputs": ["x", "q"]}]},
        "nodes/1/inputs/1",
        "unknown node 'q'",
    ),
    (
        {"nodes": [{"id": "y", "op": "neg", "inputs": ["x"]}] + inputs(x=1.0)},
        "nodes/0/inputs/0",
        "unknown node 'x'",
    ),
    (
        {"nodes": [{"id": "y", "op": "neg", "inputs": ["y"]}]},
        "nodes/0/inputs/0",
        "unknown node 'y'",
    ),
    (
        {"nodes": inputs(x=1.0) + [{"id": "y", "op": "neg", "inputs": [1]}]},
        "nodes/1/inputs/0",
        "a node id",
    ),
    ({"nodes": [{"id": "x", "op": "input"}]}, "nodes/0/value", "finite number"),
    ({"nodes": inputs(x=True)}, "nodes/0/value", "finite number"),
    ({"nodes": inputs(x="1")}, "nodes/0/value", "finite number"),
    ({"nodes": inputs(x=float("nan"))}, "nodes/0/value", "finite number"),
    ({"nodes": inputs(x=float("inf"))}, "nodes/0/value", "finite number"),
    ({"nodes": inputs(x=10**400)}, "nodes/0/value", "finite number"),
    (
        {
            "nodes": inputs(x=1.0)
            + [{"id": "y", "op": "pow", "inputs": ["x"], "attrs": {"exponent": 10**400}}]
        },
        "nodes/1/attrs/exponent",
        "exponent",
    ),
    (
        {"nodes": inputs(x=1.0) + [{"id": "y", "op": "pow", "inputs": ["x"], "attrs": {}}]},
        "nodes/1/attrs/exponent",
        "exponent",
    ),
    (
        {"nodes": inputs(x=1.0) + [{"id": "y", "op": "neg", "inputs": ["x"], "attrs": []}]},
        "nodes/1/attrs",
        "JSON object",
    ),
    (
        {"nodes": [{"id": "x", "op": "input", "value": 1, "inputs": ""}]},
        "nodes/0/inputs",
        "list of node ids",
    ),
    (
        {"nodes": inputs(x=1.0) + [{"id": "y", "op": "pow", "inputs": ["x"]}]},
        "nodes/1/attrs/exponent",
        "exponent",
    ),
    (
        {
            "nodes": inputs(x=1.0)
            + [{"id": "y", "op": "pow", "inputs": ["x"], "attrs": {"exponent": float("inf")}}]
        },
        "nodes/1/attrs/exponent",
        "exponent",
    ),
    (
        {
            "nodes": inputs(x=1.0)
            + [{"id": "y", "op": "pow", "inputs": ["x"], "attrs": {"exponent": 2, "base": 3}}]
        },
        "nodes/1/attrs/base",
        "unknown attr",
    ),
    (
        {"nodes": inputs(x=1.0) + [{"id": "y", "op": "pow", "inputs": ["x"], "attrs": [2]}]},
        "nodes/1/attrs",
        "JSON object",
    ),
    (
        {"nodes": inputs(x=1.0) + [{"id": "y", "op": "neg", "inputs": ["x"], "attrs": {"k": 1}}]},
        "nodes/1/attrs/k",
        "neg takes no attrs",
    ),
    (
        {"nodes": [{"id": "x", "op": "input", "value": 1, "attrs": {"k": 1}}]},
        "nodes/0/attrs/k",
        "input takes no attrs",
    ),
    (
        {"nodes": inputs(x=1.0) + [{"id": "y", "op": "neg", "inputs": ["x"], "value": 2}]},
        "nodes/1/value",
        "only input nodes",
    ),
    (
        {"nodes": [{"id": "x", "op": "input", "value": 1, "label": "a"}]},
        "nodes/0/label",
        "unknown field",
    ),
    ({"nodes": inputs(x=1.0), "output": "z"}, "output", "not the id of a node"),
    ({"nodes": inputs(x=1.0), "output": 0}, "output", "not the id of a node"),
]


@pytest.mark.parametrize("doc, path, message", BAD_GRAPHS)
def test_invalid_graph_names_the_place(doc, path, message):
    with pytest.raises(GraphError) as info:
        evaluate(doc)
    assert {"path": path, "message": info.value.errors[0]["message"]} == info.value.errors[0]
    assert message in info.value.errors[0]["message"]
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("doc, path, message", BAD_GRAPHS)
def test_fast_pass_passes_no_bad_graph_to_evaluation(doc, path, message):
    nodes = doc.get("nodes") if isinstance(doc, dict) else None
    if isinstance(nodes, list) and path.startswith("nodes/"):
        assert _parse_valid_nodes(nodes) is None


def test_fast_pass_reads_valid_graphs_as_the_checking_pass_does():
    doc = {
        "nodes": inputs(x=1.5, y=-2.0)
        + [
            {"id": "s", "op": "add", "inputs": ["x", "y", "x"], "attrs": {}},
            {"id": "p", "op": "pow", "inputs": ["s"], "attrs": {"exponent": 3}},
            {"id": "t", "op": "tanh", "inputs": ["p"]},
            {"id": "c", "op": "input", "value": 2, "inputs": [], "attrs": {}},
        ]
    }
    errors = []
    checked = _parse_nodes(doc["nodes"], lambda path, message: errors.append(path))
    assert _parse_valid_nodes(doc["nodes"]) == checked and errors == []


def test_every_error_is_listed_not_only_the_first():
    doc = {
        "nodes": inputs(x=1.0)
        + [{"id": "y", "op": "neg", "inputs": ["q"]}, {"id": "z", "op": "nope", "inputs": ["x"]}]
    }
    with pytest.raises(GraphError) as info:
        parse_graph(doc)
    assert [e["path"] for e in info.value.errors] == ["nodes/1/inputs/0", "nodes/2/op"]


def test_node_limit_is_enforced():
    with pytest.raises(GraphError, match="over the limit of 2"):
        parse_graph({"nodes": inputs(x=1.0, y=2.0, z=3.0)}, max_nodes=2)


@pytest.mark.parametrize(
    "nodes, culprit, fragment",
    [
        (inputs(x=0.0) + [{"id": "q", "op": "log", "inputs": ["x"]}], "q", "log"),
        (
            inputs(x=1.0, y=0.0) + [{"id": "q", "op": "div", "inputs": ["x", "y"]}],
            "q",
            "division by zero",
        ),
        (inputs(x=800.0) + [{"id": "q", "op": "exp", "inputs": ["x"]}], "q", "overflow"),
        (inputs(x=1e200) + [{"id": "q", "op": "mul", "inputs": ["x", "x"]}], "q", "non-finite"),
        (
            inputs(x=0.0) + [{"id": "q", "op": "pow", "inputs": ["x"], "attrs": {"exponent": -2}}],
            "q",
            "negative power",
        ),
        (
            inputs(x=-2.0)
            + [{"id": "q", "op": "pow", "inputs": ["x"], "attrs": {"exponent": 0.5}}],
            "q",
            "fractional",
        ),
    ],
)
def test_non_finite_value_names_the_node(nodes, culprit, fragment):
    with pytest.raises(NumericError) as info:
        evaluate({"nodes": nodes})
    assert info.value.node == culprit
    assert f"node '{culprit}'" in str(info.value) and fragment in str(info.value)


def test_non_finite_gradient_names_the_node():
    # sqrt at 0 has a finite value and an infinite slope: the gradient of x is not finite.
    nodes = inputs(x=0.0) + [{"id": "r", "op": "pow", "inputs": ["x"], "attrs": {"exponent": 0.5}}]
    with pytest.raises(NumericError) as info:
        evaluate({"nodes": nodes})
    assert info.value.node == "x"


def test_to_graph_uses_chosen_names_without_collisions():
    a, b = Value(1.0), Value(2.0)
    doc = to_graph(a * b + a, names={"n0": a, "b": b})
    ids = [n["id"] for n in doc["nodes"]]
    assert len(set(ids)) == len(ids) and "n0" in ids and "b" in ids
    assert parse_graph(doc).ops == ["input", "input", "mul", "add"]


def test_to_graph_rejects_bad_names_and_non_finite_leaves():
    with pytest.raises(ValueError):
        to_graph(Value(1.0), names={"a b": Value(1.0)})
    with pytest.raises(ValueError):
        to_graph(Value(float("inf")))


@settings(max_examples=100, deadline=None)
@given(expressions(), st.lists(st.floats(-2, 2), min_size=LEAVES, max_size=LEAVES))
def test_to_graph_round_trip_gives_the_value_engines_numbers(expr, xs0):
    xs = [Value(x) for x in xs0]
    out = build(expr, xs, [])
    out.backward()
    doc = json.loads(json.dumps(to_graph(out, names={f"x{i}": x for i, x in enumerate(xs)})))
    result = evaluate_on_values(parse_graph(doc))  # the same engine: the same floats
    assert result["value"] == out.data
    for i, x in enumerate(xs):
        if f"x{i}" in result["grads"]:  # a leaf the expression never used is not in it
            assert result["grads"][f"x{i}"] == x.grad
            assert result["values"][f"x{i}"] == x.data
