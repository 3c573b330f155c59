"""A trained model and its predictions."""

from marshmallow import RAISE, Schema, fields

from .fields import BulkList, Number
from .job import MetricsSchema, ModelSpecSchema


class ModelSchema(Schema):
    id = fields.String(dump_only=True)
    job_id = fields.String(dump_only=True)
    model = fields.Nested(
        ModelSpecSchema,
        dump_only=True,
        metadata={"description": "The architecture: inputs, layers, activation."},
    )
    loss = fields.String(dump_only=True, metadata={"description": "The loss it was trained on."})
    parameters = BulkList(
        fields.Float(),
        dump_only=True,
        metadata={"description": "In MLP order: per layer, per neuron, its weights then bias."},
    )
    metrics = fields.Nested(
        MetricsSchema, dump_only=True, metadata={"description": "At the last training step."}
    )


class PredictRequestSchema(Schema):
    class Meta:
        unknown = RAISE

    x = BulkList(fields.List(Number()), required=True, metadata={"minItems": 1})


class PredictResponseSchema(Schema):
    y = BulkList(fields.Raw(), dump_only=True, metadata={"description": "One output per row."})
    probabilities = BulkList(
        fields.List(fields.Float()),
        dump_only=True,
        metadata={"description": "ce only: class probabilities per row."},
    )
