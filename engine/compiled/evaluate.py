"""graph/1 evaluation on the compiled path: a batch of one, level-grouped."""

from .program import Program
from .tape import from_parsed


def evaluate_compiled(parsed):
    """engine.graph.evaluate's result for a ParsedGraph: the output, its value, and every
    node's value and d(output)/d(node). A non-finite value or gradient raises NumericError
    naming the node, as the Value engine does."""
    program = Program(from_parsed(parsed))
    program.forward()
    program.backward([[1.0]])
    ids, out = parsed.ids, parsed.output
    values = program.values().tolist()
    return {
        "output": ids[out],
        "value": values[out],
        "values": dict(zip(ids, values, strict=True)),
        "grads": dict(zip(ids, program.grads().tolist(), strict=True)),
    }
