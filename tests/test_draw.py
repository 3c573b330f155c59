"""engine.draw: DOT text read back by a real DOT parser (pydot), cut-down views, and
draw_dot with and without the graphviz package."""

import json
import subprocess
import sys
from pathlib import Path

import graphviz
import pydot
import pytest

from engine import GraphError, Value, draw_dot, evaluate, to_dot
from tests.test_lecture import lecture_neuron

ROOT = Path(__file__).resolve().parent.parent
README_GRAPH = json.loads((ROOT / "examples" / "micrograd_graph.json").read_text())


def parse(text):
    (graph,) = pydot.graph_from_dot_data(text)
    return graph


def unquote(raw):
    """A DOT quoted string as the lexer reads it: `\\"` is its one escape."""
    assert raw[0] == raw[-1] == '"', raw
    return raw[1:-1].replace('\\"', '"')


def record_fields(raw):
    """The fields of a record label `{ a | b | c }` as Graphviz shows them: an unescaped
    | splits, a backslash makes the next character text (\\n a line break)."""
    body = unquote(raw).strip()
    assert body[0] == "{" and body[-1] == "}", body
    fields, field, chars = [], "", iter(body[1:-1])
    for c in chars:
        if c == "\\":
            c = next(chars)
            field += "\n" if c == "n" else c
        elif c == "|":
            fields.append(field.strip())
            field = ""
        else:
            assert c not in "{}<>", f"unescaped {c!r} would restructure the record: {body}"
            field += c
    return [*fields, field.strip()]


def drawing(text):
    """{name: (label, data, grad)} of the records, {name: op} of the op nodes, the edges
    (source, destination) in order, and the graph attributes."""
    graph = parse(text)
    records, ops, attrs = {}, {}, {}
    for node in graph.get_nodes():
        if node.get_name() == "graph":
            attrs.update(node.get_attributes())
        elif node.get("shape") == "record":
            label, data, grad = record_fields(node.get("label"))
            assert data.startswith("data ") and grad.startswith("grad ")
            records[node.get_name()] = (label, float(data[5:]), float(grad[5:]))
        else:
            ops[node.get_name()] = unquote(node.get("label"))
    edges = [(e.get_source(), e.get_destination()) for e in graph.get_edges()]
    return records, ops, edges, attrs


def test_the_lecture_neuron_as_the_lecture_draws_it():
    v = lecture_neuron()
    v["o"].backward()
    records, ops, edges, attrs = drawing(to_dot(v["o"]))
    assert attrs["rankdir"] == "LR"
    # One record per value, with its label, data and grad to the 4 places shown.
    assert sorted(label for label, _, _ in records.values()) == sorted(v)
    for label, data, grad in records.values():
        assert data == round(v[label].data, 4) and grad == round(v[label].grad, 4)
    # One op node per result, wired operand -> op -> result.
    name = {label: node for node, (label, _, _) in records.items()}
    wiring = {
        "x1*w1": ("*", ["x1", "w1"]),
        "x2*w2": ("*", ["x2", "w2"]),
        "x1*w1 + x2*w2": ("+", ["x1*w1", "x2*w2"]),
        "n": ("+", ["x1*w1 + x2*w2", "b"]),
        "o": ("tanh", ["n"]),
    }
    assert len(ops) == len(wiring)
    for result, (symbol, operands) in wiring.items():
        (op_node,) = [src for src, dst in edges if dst == name[result]]
        assert ops[op_node] == symbol
        assert [src for src, dst in edges if dst == op_node] == [name[x] for x in operands]
    assert len(edges) == len(wiring) + sum(len(x) for _, x in wiring.values())


def test_every_node_of_an_evaluated_document_is_drawn_with_its_value_and_grad():
    result = evaluate(README_GRAPH)
    records, ops, edges, _ = drawing(to_dot(README_GRAPH, result))
    ids = [node["id"] for node in README_GRAPH["nodes"]]
    assert sorted(label for label, _, _ in records.values()) == sorted(ids)
    for label, data, grad in records.values():
        assert data == round(result["values"][label], 4)
        assert grad == round(result["grads"][label], 4)
    computed = [node for node in README_GRAPH["nodes"] if node["op"] != "input"]
    assert len(ops) == len(computed)
    assert len(edges) == sum(1 + len(node["inputs"]) for node in computed)
    assert {"+", "*", "neg", "ReLU", "/"} <= set(ops.values())
    assert to_dot(README_GRAPH) == to_dot(README_GRAPH, result)  # evaluated when not given


def test_a_document_node_that_does_not_feed_the_output_is_drawn_too():
    doc = {
        "nodes": [
            {"id": "a", "op": "input", "value": 3.0},
            {"id": "unused", "op": "exp", "inputs": ["a"]},
            {"id": "p", "op": "pow", "inputs": ["a"], "attrs": {"exponent": 2}},
        ],
        "output": "p",
    }
    records, ops, _, _ = drawing(to_dot(doc, evaluate(doc)))
    assert sorted(records.values()) == [
        ("a", 3.0, 6.0),
        ("p", 9.0, 1.0),
        ("unused", round(2.718281828**3, 4), 0.0),
    ]
    assert sorted(ops.values()) == ["**2", "exp"]


def test_labels_that_look_like_dot_syntax_stay_text():
    labels = ['a|b{c}<d>"e', "back\\slash \\N", '"quoted"\\', "two\nlines", ""]
    leaves = [Value(float(i), label=label) for i, label in enumerate(labels)]
    total = sum(leaves[1:], leaves[0])
    total.label = "} | {"
    records, _, _, _ = drawing(to_dot(total))
    assert sorted(label for label, _, _ in records.values() if label) == sorted(
        [label for label in labels if label] + ["} | {"]
    )


def test_document_ids_are_labels_and_the_records_survive_any_legal_id():
    doc = {
        "nodes": [
            {"id": "a:b.c-d_1", "op": "input", "value": 2.0},
            {"id": "x", "op": "neg", "inputs": ["a:b.c-d_1"]},
        ]
    }
    records, ops, _, _ = drawing(to_dot(doc))
    assert sorted(records.values()) == [("a:b.c-d_1", 2.0, -1.0), ("x", -2.0, 1.0)]
    assert list(ops.values()) == ["neg"]


def chain(length):
    x = Value(0.5, label="x")
    y = x
    for i in range(length):
        y = y * 1.0 + Value(1.0, label=f"one{i}")
        y.label = f"y{i}"
    y.backward()
    return y


def test_a_large_graph_is_cut_to_the_output_neighbourhood_with_a_note():
    y = chain(1000)  # 4001 values
    text = to_dot(y, max_nodes=50)
    records, _, _, _ = drawing(text)
    assert len(records) == 50
    notes = [n for n in parse(text).get_nodes() if n.get("shape") == "note"]
    assert len(notes) == 1
    assert unquote(notes[0].get("label")).startswith("showing 50 of 4001 values")
    # Breadth-first from the output: the last steps of the chain, not its start.
    labels = {label for label, _, _ in records.values()}
    assert {"y999", "one999", "y998", "one998"} <= labels
    assert "x" not in labels and "y0" not in labels
    # An op whose operands were cut says so, with a dashed edge from a marker.
    assert "inputs not shown" in text or "input not shown" in text
    assert "style=dashed" in text


def test_the_default_cut_and_no_note_below_it():
    small = to_dot(chain(10))
    assert "note" not in small and "not shown" not in small
    records, _, _, _ = drawing(to_dot(chain(100)))  # 401 values: over the default 200
    assert len(records) == 200
    assert "showing 200 of 401 values" in to_dot(chain(100))
    assert "showing 5 of 26 values" in to_dot(README_GRAPH, max_nodes=5)


def test_draw_dot_is_a_digraph_of_the_same_text():
    v = lecture_neuron()
    v["o"].backward()
    picture = draw_dot(v["o"])
    assert isinstance(picture, graphviz.Digraph)
    assert picture.format == "svg"
    assert picture.source == to_dot(v["o"])
    assert draw_dot(v["o"], rankdir="TB", format="png").source == to_dot(v["o"], rankdir="TB")
    result = evaluate(README_GRAPH)
    assert draw_dot(README_GRAPH, result).source == to_dot(README_GRAPH, result)


def test_draw_dot_without_graphviz_says_what_to_install():
    hide_graphviz = (
        "import sys\n"
        "class Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'graphviz':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}')\n"
        "sys.meta_path.insert(0, Hide())\n"
        "from engine import Value, draw_dot, to_dot\n"
        "print(to_dot(Value(1.0, label='a')).splitlines()[2])\n"
        "draw_dot(Value(1.0))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", hide_graphviz], cwd=ROOT, capture_output=True, text=True
    )
    assert run.returncode == 1
    assert 'v0 [label="{ a | data 1.0000 | grad 0.0000 }" shape=record]' in run.stdout
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: draw_dot needs the graphviz Python package")
    assert "pip install 'gradserve[draw]'" in last and "pip install graphviz" in last


def test_bad_arguments_are_refused_clearly():
    with pytest.raises(TypeError, match="a Value, a graph/1 document"):
        to_dot(3.0)
    with pytest.raises(TypeError, match="no result"):
        to_dot(Value(1.0), {"values": {}, "grads": {}})
    with pytest.raises(ValueError, match="max_nodes"):
        to_dot(Value(1.0), max_nodes=0)
    with pytest.raises(ValueError, match="rankdir"):
        to_dot(Value(1.0), rankdir="XY")
    with pytest.raises(GraphError):
        to_dot({"nodes": []})
    with pytest.raises(ValueError, match="no value and grad for node 'g'"):
        to_dot(README_GRAPH, {"values": {}, "grads": {}})
