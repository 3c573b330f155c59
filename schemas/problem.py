"""RFC 9457 problem details: the body of every error response and of a failed job's
`error`."""

from marshmallow import INCLUDE, Schema, fields


class ErrorEntrySchema(Schema):
    """One offending place in the request."""

    path = fields.String(
        required=True,
        metadata={
            "description": "Where the problem is: a JSON pointer without its leading slash "
            "(`nodes/3/inputs/0`); empty for the document as a whole.",
            "example": "nodes/3/inputs/0",
        },
    )
    message = fields.String(required=True, metadata={"example": "unknown node 'q'"})


class ProblemSchema(Schema):
    """A problem details object (RFC 9457), served as `application/problem+json`."""

    class Meta:
        unknown = INCLUDE  # problem types may carry extension members

    type = fields.String(
        metadata={
            "description": "A URI naming the kind of problem; `about:blank` when the "
            "HTTP status says it all.",
            "example": "tag:gradserve,2026:problem/invalid-input",
        }
    )
    title = fields.String(metadata={"example": "Invalid input"})
    status = fields.Integer(metadata={"example": 422})
    detail = fields.String(metadata={"example": "nodes/3/inputs/0: unknown node 'q'"})
    instance = fields.String(metadata={"description": "The request path it happened at."})
    errors = fields.List(
        fields.Nested(ErrorEntrySchema),
        metadata={"description": "Each offending field or node (validation problems)."},
    )
    node = fields.String(
        metadata={"description": "The graph node whose value or gradient is not finite."}
    )
    step = fields.Integer(
        metadata={"description": "The training step at which the loss became non-finite."}
    )
