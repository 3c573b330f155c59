"""A job's loss history, one entry per step, unsampled."""

from marshmallow import RAISE, Schema, fields

from .fields import BulkList


class HistorySchema(Schema):
    job_id = fields.String(dump_only=True)
    step = BulkList(fields.Integer(), dump_only=True)
    loss = BulkList(fields.Float(), dump_only=True)
    accuracy = BulkList(
        fields.Float(allow_none=True), dump_only=True, metadata={"description": "null for mse."}
    )


class HistoryArgsSchema(Schema):
    class Meta:
        unknown = RAISE

    since = fields.Integer(
        metadata={"minimum": 0, "description": "Only steps at or after this one."}
    )
