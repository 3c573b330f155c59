"""engine.columns: a graph/1 document read into arrays gives the dict path's graph, errors,
values and gradients; the compiled program runs the arrays; results written from arrays
read back as the dict results."""

import copy
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.shapes import products_and_sum_tree
from engine import GraphError, NumericError, to_dot
from engine.columns import (
    columns_from_parsed,
    columns_of,
    is_packed,
    pack,
    unpack,
    vouched_columns,
)
from engine.compiled.evaluate import entries_of, evaluate_compiled, result_json
from engine.evaluate import COMPILED_FROM_NODES, evaluate, parse
from engine.graph import evaluate_on_values, parse_graph
from tests.test_compiled import REL, close, graphs, same_numeric_error
from tests.test_compiled import outcome as numeric_outcome
from tests.test_graph import BAD_GRAPHS, CONTRACT_EXAMPLE


def same_columns(a, b):
    return (
        a.ids == b.ids
        and a.output == b.output
        and np.array_equal(a.codes, b.codes)
        and np.array_equal(a.ptr, b.ptr)
        and np.array_equal(a.flat, b.flat)
        and np.array_equal(a.attrs, b.attrs, equal_nan=True)
    )


def outcome(read, doc):
    """What reading `doc` gives: the graph, or the errors it is refused with."""
    try:
        return read(doc)
    except GraphError as e:
        return e.errors


# --- reading ---


@settings(max_examples=200, deadline=None)
@given(graphs())
def test_the_fast_pass_reads_valid_graphs_as_the_checking_pass_does(doc):
    fast = vouched_columns(doc, None)
    assert fast is not None  # the generated graphs are all valid: none needs the slow pass
    assert same_columns(fast, columns_from_parsed(parse_graph(doc)))


def test_optional_fields_in_every_allowed_form_stay_on_the_fast_pass():
    doc = {
        "format": "graph/1",
        "nodes": [
            {"id": "x", "op": "input", "value": 2, "inputs": [], "attrs": {}},
            {"id": "y", "op": "input", "value": -1.5},
            {"id": "s", "op": "add", "inputs": ["x", "y", "x"], "attrs": {}},
            {"id": "p", "op": "pow", "inputs": ["s"], "attrs": {"exponent": 3}},
            {"id": "t", "op": "tanh", "inputs": ["p"]},
        ],
        "output": "p",
    }
    fast = vouched_columns(doc, None)
    assert fast is not None and same_columns(fast, columns_from_parsed(parse_graph(doc)))
    assert fast.output == 3 and fast.flat.tolist() == [0, 1, 0, 2, 3]


@pytest.mark.parametrize("doc, path, message", BAD_GRAPHS)
def test_bad_graphs_get_the_dict_paths_errors(doc, path, message):
    if isinstance(doc, dict):
        assert vouched_columns(doc, None) is None
    with pytest.raises(GraphError) as info:
        columns_of(doc)
    assert info.value.errors == outcome(parse_graph, doc)
    assert info.value.errors[0]["path"] == path and message in info.value.errors[0]["message"]


def test_the_node_limit_is_the_dict_paths():
    doc = {"nodes": [{"id": f"x{i}", "op": "input", "value": 1.0} for i in range(3)]}
    with pytest.raises(GraphError) as info:
        columns_of(doc, max_nodes=2)
    assert info.value.errors == outcome(lambda d: parse_graph(d, 2), doc)


# Each breaks one node of a valid graph (or keeps it valid in a form the fast pass may not
# vouch for): (node field or None for the document, new value or DELETE).
DELETE = object()
MUTATIONS = [
    ("id", DELETE),
    ("id", None),
    ("id", 7),
    ("id", ""),
    ("id", "x" * 65),
    ("id", "bad id"),
    ("id", "é"),
    ("id", "a\nb"),
    ("id", "\ud800"),
    ("id", "v0"),  # a duplicate
    ("op", DELETE),
    ("op", "nope"),
    ("op", ["add"]),
    ("op", "input"),
    ("op", "pow"),
    ("op", "add"),
    ("inputs", DELETE),
    ("inputs", None),
    ("inputs", "v0"),
    ("inputs", []),
    ("inputs", ["zz"]),
    ("inputs", [0]),
    ("inputs", ["SELF"]),
    ("inputs", ["LATER"]),
    ("inputs", ["v0", "v0", "v0"]),
    ("inputs", ("v0", "v0")),  # a Python caller's tuple: not a JSON list
    ("inputs", ()),
    ("value", 1.0),
    ("value", None),
    ("value", True),
    ("value", "1.0"),
    ("value", math.inf),
    ("value", math.nan),
    ("value", 10**400),
    ("attrs", {}),
    ("attrs", None),
    ("attrs", []),
    ("attrs", {"exponent": 2}),
    ("attrs", {"exponent": 2, "k": 1}),
    ("attrs", {"exponent": True}),
    ("attrs", {"exponent": math.inf}),
    ("attrs", {"k": 1}),
    ("extra", 1),
    ("NODE", "not a node"),
    ("NODE", None),
    ("OUTPUT", "zz"),
    ("OUTPUT", 3),
    ("FORMAT", "graph/2"),
    ("EXTRA", 1),
]


def mutated(doc, i, field, value):
    doc = copy.deepcopy(doc)
    nodes = doc["nodes"]
    i %= len(nodes)
    if field == "NODE":
        nodes[i] = value
    elif field in ("OUTPUT", "FORMAT", "EXTRA"):
        doc[field.lower()] = value
    elif not isinstance(nodes[i], dict):  # broken already
        pass
    elif value is DELETE:
        nodes[i].pop(field, None)
    else:
        if isinstance(value, list):
            later = nodes[i + 1] if i + 1 < len(nodes) else {}
            named = {"SELF": nodes[i].get("id"), "LATER": getattr(later, "get", {}.get)("id")}
            value = [named.get(v, v) if isinstance(v, str) else v for v in value]
        nodes[i][field] = value
    return doc


@settings(max_examples=400, deadline=None)
@given(graphs(), st.integers(0, 10**6), st.sampled_from(MUTATIONS), st.integers(0, 10**6))
def test_a_broken_or_unusual_graph_reads_as_the_dict_path_reads_it(doc, i, mutation, j):
    doc = mutated(doc, i, *mutation)
    if j % 3 == 0:  # sometimes two things at once: every place is still listed
        doc = mutated(doc, j, *MUTATIONS[j % len(MUTATIONS)])
    want, got = outcome(parse_graph, doc), outcome(columns_of, doc)
    if isinstance(want, list):
        assert got == want
    else:
        assert same_columns(got, columns_from_parsed(want))


# --- evaluating ---


@settings(max_examples=300, deadline=None)
@given(graphs())
def test_the_array_path_gives_the_value_engines_values_gradients_and_errors(doc):
    columns = columns_of(doc)
    want = numeric_outcome(evaluate_on_values, parse_graph(doc))
    got = numeric_outcome(evaluate_compiled, columns)
    if isinstance(want, NumericError):
        same_numeric_error(got, want)
        with pytest.raises(NumericError):
            result_json(columns)
        return
    assert not isinstance(got, NumericError), got
    assert (got["output"], list(got["values"])) == (want["output"], list(want["values"]))
    assert close(list(got["values"].values()), list(want["values"].values()))
    got_grads, want_grads = list(got["grads"].values()), list(want["grads"].values())
    scale = max(1.0, *map(abs, want_grads))
    assert np.all(np.abs(np.subtract(got_grads, want_grads)) <= REL * scale)
    # written from the arrays: the same document, every float to the last bit
    assert json.loads(result_json(columns)) == got


def test_the_contract_example_on_the_array_path():
    got = json.loads(result_json(columns_of(CONTRACT_EXAMPLE)))
    assert got == {
        "output": "p",
        "value": 8.0,
        "values": {"a": -4.0, "b": 2.0, "c": -2.0, "p": 8.0},
        "grads": {"a": 0.0, "b": 12.0, "c": 0.0, "p": 1.0},
    }


def test_the_bench_graphs_shape_gives_the_value_engines_results():
    doc = products_and_sum_tree(80)  # 6,399 nodes: evaluate reads it as columns
    assert len(doc["nodes"]) >= COMPILED_FROM_NODES
    assert not isinstance(parse(doc), tuple.__class__) and type(parse(doc)).__name__ == (
        "GraphColumns"
    )
    got, want = evaluate(doc), evaluate_on_values(parse_graph(doc))
    assert list(got["values"]) == list(want["values"])
    assert close(list(got["values"].values()), list(want["values"].values()))
    assert close(list(got["grads"].values()), list(want["grads"].values()))
    # hand-derived: d(sum of x_i x_j over i < j)/dx_k is the sum of the other leaves
    xs = [n["value"] for n in doc["nodes"][:80]]
    assert close([got["grads"][f"x{k}"] for k in range(80)], [sum(xs) - x for x in xs])
    assert got["value"] == pytest.approx((sum(xs) ** 2 - sum(x * x for x in xs)) / 2)


# --- packed for the queue, and back to a document ---


@settings(max_examples=100, deadline=None)
@given(graphs())
def test_columns_travel_packed_and_draw_as_their_document(doc):
    columns = columns_of(doc)
    packed = pack(columns)
    assert is_packed(packed) and not is_packed(json.dumps(doc).encode())
    assert same_columns(unpack(packed), columns)
    result = numeric_outcome(evaluate_compiled, columns)
    assert str(numeric_outcome(evaluate_compiled, unpack(packed))) == str(result)
    if isinstance(result, NumericError):
        return
    # Drawn from the arrays as from the document, its result given as evaluate returns it,
    # as result_json writes it (read only where drawn), or as other JSON (read whole).
    written = result_json(columns)
    reordered = json.dumps({"values": result["values"], "grads": result["grads"]}).encode()
    backwards = {**result, "values": dict(reversed(result["values"].items()))}
    backwards = json.dumps(backwards, separators=(",", ":")).encode()  # laid out, misordered
    for limit in (3, 200):  # cut (operands not shown, a note), and whole
        want = to_dot(doc, result, max_nodes=limit)
        for as_given in (result, written, reordered, backwards):
            assert to_dot(unpack(packed), as_given, max_nodes=limit) == want


def test_a_drawing_reads_ids_with_colons_from_the_written_result():
    doc = products_and_sum_tree(12)
    for node in doc["nodes"]:  # x3 -> ns:x3, inputs alike
        node["id"] = "ns:" + node["id"]
        if "inputs" in node:
            node["inputs"] = ["ns:" + i for i in node["inputs"]]
    columns = columns_of(doc)
    result = evaluate_compiled(columns)
    ids = columns.ids
    assert entries_of(result_json(columns), ids, [0, len(ids) - 1]) == {
        0: (result["values"][ids[0]], result["grads"][ids[0]]),
        len(ids) - 1: (result["value"], 1.0),
    }
    assert to_dot(columns, result_json(columns), max_nodes=10) == to_dot(doc, result, max_nodes=10)
