"""`evaluate`: a graph/1 document's values and gradients, on whichever engine is faster
for its size: a small graph in Python, op by op on floats with the Value engine's
arithmetic (engine.graph), a large one on the compiled program (engine.compiled), which
reads the document as columns (engine.columns)."""

from .columns import GraphColumns, columns_of
from .compiled import evaluate_compiled
from .graph import ParsedGraph, evaluate_parsed, parse_graph
from .value import paused_gc

COMPILED_FROM_NODES = 5_000  # from here the compiled program is faster (bench compiled)


def is_large(doc) -> bool:
    """Is `doc` (a decoded graph/1 document) evaluated on the compiled program?"""
    nodes = doc.get("nodes") if isinstance(doc, dict) else None
    return isinstance(nodes, list) and len(nodes) >= COMPILED_FROM_NODES


def parse(doc, max_nodes=None):
    """A validated document, in the form its evaluation reads: GraphColumns for a large
    one, a ParsedGraph for a small one. A GraphError lists what is wrong."""
    return columns_of(doc, max_nodes) if is_large(doc) else parse_graph(doc, max_nodes)


def evaluate(graph, max_nodes=None):
    """Forward values and d(output)/d(node) for every node of `graph`: a graph/1 document
    (validated first, up to `max_nodes` nodes), or a ParsedGraph or GraphColumns that
    `parse` made. A GraphError lists what is wrong with a document; a NumericError names
    the node."""
    # A large graph allocates millions of objects and makes no cycles: without the pause,
    # the cyclic collector would walk every one of them again and again.
    with paused_gc():
        parsed = graph if isinstance(graph, ParsedGraph | GraphColumns) else parse(graph, max_nodes)
        if isinstance(parsed, GraphColumns) or len(parsed.ids) >= COMPILED_FROM_NODES:
            return evaluate_compiled(parsed)
        return evaluate_parsed(parsed)
