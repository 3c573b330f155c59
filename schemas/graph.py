"""The graph/1 document (contract section 2) and the graph resource.

Only the envelope is loaded by marshmallow: a schema per node would take seconds for
10^5 nodes, so the node list is checked by `engine.graph.parse_graph`; `NodeSchema` is
there to document it."""

from marshmallow import RAISE, Schema, fields

from .fields import BulkDict, BulkList, Number
from .problem import ProblemSchema

OPS = ["input", "add", "mul", "sub", "div", "neg", "pow", "relu", "tanh", "exp", "log", "sigmoid"]
GRAPH_STATUSES = ["queued", "running", "succeeded", "failed"]


class NodeAttrsSchema(Schema):
    exponent = Number(metadata={"description": "The exponent of a `pow` node."})


class NodeSchema(Schema):
    """One node (documentation only: nodes are checked in bulk by the engine)."""

    id = fields.String(
        required=True,
        metadata={"pattern": "^[A-Za-z0-9_.:-]{1,64}$", "description": "Unique in the graph."},
    )
    op = fields.String(required=True, metadata={"enum": OPS})
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

    format = fields.String(metadata={"enum": ["graph/1"], "default": "graph/1"})
    nodes = BulkList(fields.Nested(NodeSchema), required=True, metadata={"minItems": 1})
    output = fields.String(
        metadata={"description": "The node that is differentiated; defaults to the last."}
    )


class GraphResultSchema(Schema):
    """Forward values and gradients d(output)/d(node) of every node."""

    output = fields.String(dump_only=True)
    value = fields.Float(dump_only=True)
    values = BulkDict(keys=fields.String(), values=fields.Float(), dump_only=True)
    grads = BulkDict(keys=fields.String(), values=fields.Float(), dump_only=True)


class GraphResourceSchema(Schema):
    """A graph evaluation: its result once it has succeeded, a problem if it failed."""

    id = fields.String(dump_only=True)
    status = fields.String(dump_only=True, metadata={"enum": GRAPH_STATUSES})
    result = fields.Nested(GraphResultSchema, dump_only=True)
    error = fields.Nested(ProblemSchema, dump_only=True)
