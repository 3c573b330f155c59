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


def _one_or_many(description: str) -> dict:
    """A list with a number per row (one output) or a list of numbers per row (several)."""
    numbers = {"type": "array", "items": {"type": "number"}}
    rows = {"type": "array", "items": numbers}
    return {"oneOf": [numbers, rows], "description": description}


class PredictResponseSchema(Schema):
    y = fields.Raw(
        dump_only=True,
        metadata=_one_or_many(
            "The network's outputs: a number per row for a model with one output, a list "
            "of numbers per row for a model with several."
        ),
    )
    probabilities = fields.Raw(
        dump_only=True,
        metadata=_one_or_many(
            "bce: the probability of class 1 per row (a number each); ce: the class "
            "probabilities per row (a list each). Absent for hinge and mse."
        ),
    )
