"""A job's loss history, one entry per step, unsampled, a page at a time."""

from marshmallow import RAISE, Schema, fields

from .fields import BulkList


class HistorySchema(Schema):
    job_id = fields.String(dump_only=True)
    step = BulkList(fields.Integer(), dump_only=True)
    loss = BulkList(fields.Float(), dump_only=True)
    accuracy = BulkList(
        fields.Float(allow_none=True), dump_only=True, metadata={"description": "null for mse."}
    )
    next_since = fields.Integer(
        dump_only=True,
        allow_none=True,
        metadata={
            "description": "The first step of the next page, when `limit` cut this one short; "
            "null when the page reaches the last step stored so far."
        },
    )


class HistoryArgsSchema(Schema):
    class Meta:
        unknown = RAISE

    since = fields.Integer(
        metadata={"minimum": 0, "description": "Only steps at or after this one."}
    )
    limit = fields.Integer(
        metadata={"minimum": 1, "description": "Steps per page (default HISTORY_PAGE_SIZE)."}
    )
