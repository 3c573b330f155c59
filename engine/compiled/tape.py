"""The compiled path's one input form: a scalar graph as flat lists (a tape).

A tape is a ParsedGraph (engine.graph) with a few more facts: several outputs, and which
leaves are fed at run time. Leaves listed in `placeholders` take one sample's inputs,
those in `params` the parameter vector; every other leaf is a constant. `trace` records
a Value expression this way; `from_parsed` takes a graph/1 document as the lead parsed it.
"""

from typing import NamedTuple

from ..ops import op_of_label
from ..value import Value


class Tape(NamedTuple):
    """Node i has ids[i], ops[i] (graph/1 ops, and "dot" once fused), inputs[i] (indices
    of earlier nodes) and attrs[i] (a leaf's value, pow's exponent, a dot's length)."""

    ids: list
    ops: list
    inputs: list
    attrs: list
    outputs: list
    placeholders: tuple | list = ()
    params: tuple | list = ()


def from_parsed(parsed):
    """The tape of an engine.graph.ParsedGraph: every leaf a constant, one output."""
    return Tape(parsed.ids, parsed.ops, parsed.inputs, parsed.attrs, [parsed.output])


def trace(outputs, inputs=(), params=()):
    """Record the graph behind `outputs` (a Value or a list of them) as a tape.

    `inputs` are the leaves fed per sample and `params` the leaves fed per step; both keep
    their order. Every other leaf is a constant with its current value. The walk is
    iterative, so any depth works; nodes come out in a topological order."""
    outputs = [outputs] if isinstance(outputs, Value) else list(outputs)
    ids, ops, operands, attrs = [], [], [], []
    index = {}  # id(Value) -> node index

    def add_node(v, node_id, op, args, attr):
        index[id(v)] = len(ids)
        ids.append(node_id)
        ops.append(op)
        operands.append(args)
        attrs.append(attr)

    for prefix, leaves in (("x", inputs), ("p", params)):
        for k, v in enumerate(leaves):
            if not isinstance(v, Value) or v._prev:
                raise ValueError(f"{prefix}{k} is not a leaf Value: only leaves can be fed")
            if id(v) in index:
                raise ValueError(f"{prefix}{k} is listed twice among the inputs and params")
            add_node(v, f"{prefix}{k}", "input", (), v.data)
    placeholders = list(range(len(inputs)))
    fed = list(range(len(inputs), len(ids)))

    expanded = set(index)
    for root in outputs:
        if not isinstance(root, Value):
            raise TypeError(f"outputs must be Values, not {type(root).__name__}")
        stack = [root]
        while stack:  # depth-first; a node's (node,) marker pops after its operands
            v = stack.pop()
            if v.__class__ is tuple:
                v = v[0]
                add_node(v, f"n{len(ids)}", *_recorded(v, index))
            elif id(v) not in expanded:
                expanded.add(id(v))
                stack.append((v,))
                # first operand first: a layer's units come out in order, so their rows
                # and weights step up in the program (views, no gathers)
                stack.extend(c for c in reversed(v._prev) if id(c) not in expanded)
    return Tape(ids, ops, operands, attrs, [index[id(v)] for v in outputs], placeholders, fed)


def _recorded(v, index):
    """(op, operand indices, attr) of a Value whose operands are already recorded."""
    if not v._prev:
        return "input", (), v.data
    try:
        op, attr = op_of_label(v._op)
    except ValueError:
        raise ValueError(f"cannot trace a Value made by the unknown op {v._op!r}") from None
    return op, tuple(index[id(c)] for c in v._prev), attr
