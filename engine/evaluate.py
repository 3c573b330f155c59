"""`evaluate`: a graph/1 document's values and gradients, on whichever engine is faster
for its size: the Value engine (engine.graph) or the compiled program (engine.compiled)."""

from .compiled import evaluate_compiled
from .graph import ParsedGraph, evaluate_parsed, parse_graph

COMPILED_FROM_NODES = 5_000  # from here the compiled program is faster (bench compiled)


def evaluate(graph, max_nodes=None):
    """Forward values and d(output)/d(node) for every node of `graph`: a graph/1 document
    (validated first, up to `max_nodes` nodes) or a ParsedGraph that parse_graph made.
    A GraphError lists what is wrong with a document; a NumericError names the node."""
    parsed = graph if isinstance(graph, ParsedGraph) else parse_graph(graph, max_nodes)
    if len(parsed.ids) >= COMPILED_FROM_NODES:
        return evaluate_compiled(parsed)
    return evaluate_parsed(parsed)
