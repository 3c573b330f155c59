"""engine.evaluate: one entry for graph/1 evaluation, choosing the engine by size; and the
import order that keeps engine.graph and engine.compiled out of a circle."""

import ast
import sys
from pathlib import Path

import pytest

import engine
import engine.graph
from engine import GraphError, evaluate
from engine.compiled import evaluate_compiled
from engine.evaluate import COMPILED_FROM_NODES
from engine.graph import evaluate_parsed, parse_graph

ENGINE = Path(engine.__file__).parent
evaluate_module = sys.modules["engine.evaluate"]  # engine.evaluate is the function


def chain(n):
    """x, then n - 1 nodes alternating tanh and add, in a row."""
    nodes = [{"id": "n0", "op": "input", "value": 0.5}]
    for i in range(1, n):
        op = ("tanh", "add")[i % 2]
        inputs = [f"n{i - 1}"] if op == "tanh" else [f"n{i - 1}", "n0"]
        nodes.append({"id": f"n{i}", "op": op, "inputs": inputs})
    return {"nodes": nodes}


@pytest.fixture
def compiled_calls(monkeypatch):
    """The sizes of the graphs that evaluate hands to the compiled program."""
    calls = []

    def spy(parsed):
        calls.append(len(parsed.ids))
        return evaluate_compiled(parsed)

    monkeypatch.setattr(evaluate_module, "evaluate_compiled", spy)
    return calls


def test_small_graphs_are_evaluated_in_python_large_ones_on_the_compiled_program(compiled_calls):
    below, at = chain(COMPILED_FROM_NODES - 1), chain(COMPILED_FROM_NODES)
    assert evaluate(below) == evaluate_parsed(parse_graph(below))
    assert compiled_calls == []
    result = evaluate(at)
    assert compiled_calls == [COMPILED_FROM_NODES]
    want = evaluate_parsed(parse_graph(at))
    assert result["values"] == want["values"]  # a chain: the same floats on both engines
    assert result["grads"].keys() == want["grads"].keys()


def test_a_parsed_graph_is_evaluated_as_it_is(compiled_calls):
    doc = chain(COMPILED_FROM_NODES + 10)
    parsed = parse_graph(doc)
    assert evaluate(parsed) == evaluate(doc)
    assert compiled_calls == [len(parsed.ids)] * 2


def test_a_document_is_checked_against_max_nodes():
    with pytest.raises(GraphError) as caught:
        evaluate(chain(20), max_nodes=10)
    assert caught.value.errors[0]["path"] == "nodes"


def test_the_worker_finds_evaluate_in_engine_graph_too():
    assert engine.graph.evaluate is evaluate is engine.evaluate
    with pytest.raises(AttributeError):
        engine.graph.no_such_name  # noqa: B018


def module_imports(path):
    """The modules a file imports at its top level (relative ones as written: ..graph)."""
    tree = ast.parse(path.read_text())
    names = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            names.append("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return names


def test_graph_reads_no_compiled_path_and_the_compiled_path_no_evaluate():
    assert not any(
        "compiled" in name or "evaluate" in name for name in module_imports(ENGINE / "graph.py")
    )
    for path in (ENGINE / "compiled").glob("*.py"):
        assert "..evaluate" not in module_imports(path), path.name


def test_the_op_table_reads_nothing_of_the_engine_but_its_errors():
    assert [n for n in module_imports(ENGINE / "ops.py") if n.startswith(".")] == [".errors"]
