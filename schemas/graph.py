"""The graph/1 document (contract section 2) and the graph resource.

Only the envelope is loaded by marshmallow: a schema per node would take seconds for
10^5 nodes, so the node list is checked by `engine.graph.parse_graph`; `NodeSchema` is
there to document it. The ops, the format and the id pattern are the engine's."""

from typing import Any

from marshmallow import RAISE, Schema, fields

from engine.graph import FORMAT, ID_PATTERN
from engine.ops import NAMES, OPS

from .fields import BulkDict, BulkList, Number
from .problem import ProblemSchema

GRAPH_STATUSES = ["queued", "running", "succeeded", "failed"]


# One field per attribute of an op: pow's exponent.
NodeAttrsSchema = Schema.from_dict(
    {
        op.attr: Number(metadata={"description": f"The {op.attr} of a `{op.name}` node."})
        for op in OPS
        if op.attr is not None
    },
    name="NodeAttrsSchema",
)


class NodeSchema(Schema):
    """One node (documentation only: nodes are checked in bulk by the engine)."""

    id = fields.String(
        required=True,
        metadata={"pattern": f"^{ID_PATTERN.pattern}$", "description": "Unique in the graph."},
    )
    op = fields.String(required=True, metadata={"enum": list(NAMES)})
    inputs = fields.List(
        fields.String(),
        metadata={"description": "Ids of earlier nodes (nodes are in topological order)."},
    )
    value = Number(metadata={"description": "The value of an `input` node."})
    attrs = fields.Nested(NodeAttrsSchema)


class GraphSchema(Schema):
    """A graph/1 document: the request body of POST /v1/graphs."""

    class Meta:
        unknown = RAISE

    format = fields.String(metadata={"enum": [FORMAT], "default": FORMAT})
    nodes = BulkList(fields.Nested(NodeSchema), required=True, metadata={"minItems": 1})
    output = fields.String(
        metadata={"description": "The node that is differentiated; defaults to the last."}
    )


ENVELOPE = frozenset(GraphSchema().fields)


def plain_graph(document: Any) -> dict | None:
    """GraphSchema().load(document) without marshmallow's machinery (4% of a small graph
    POST's CPU, docs/BENCHMARKS.md), for a plainly well-formed envelope: an object of GraphSchema's
    fields only, `nodes` a list, `format` and `output` strings if given. None for anything
    else: GraphSchema loads it, or words its problem (tests/test_schemas.py holds the two
    together)."""
    if (
        document.__class__ is dict
        and document.keys() <= ENVELOPE
        and document.get("nodes").__class__ is list
        and document.get("format", "").__class__ is str
        and document.get("output", "").__class__ is str
    ):
        return dict(document)
    return None


class GraphResultSchema(Schema):
    """Forward values and gradients d(output)/d(node) of every node; with `Prefer:
    return=minimal`, the summary alone: output, value and nodes."""

    output = fields.String(dump_only=True)
    value = fields.Float(dump_only=True)
    values = BulkDict(keys=fields.String(), values=fields.Float(), dump_only=True)
    grads = BulkDict(keys=fields.String(), values=fields.Float(), dump_only=True)
    nodes = fields.Integer(
        dump_only=True,
        metadata={"description": "The graph's count of nodes (`Prefer: return=minimal` only)."},
    )


class GraphResourceSchema(Schema):
    """A graph evaluation: its result once it has succeeded, a problem if it failed."""

    id = fields.String(dump_only=True)
    status = fields.String(dump_only=True, metadata={"enum": GRAPH_STATUSES})
    result = fields.Nested(GraphResultSchema, dump_only=True)
    error = fields.Nested(ProblemSchema, dump_only=True)
