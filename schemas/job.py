"""A training job (contract section 3): its spec, the job resource and the job list.

Marshmallow checks the shape and types of a spec; `engine.spec.normalize_spec` is the
one authority on values (ranges, choices, limits, defaults), so the ranges and choices
below are documentation (OpenAPI metadata) and never a second, diverging rule: the choices
and defaults are read from the engine."""

from typing import Any

from marshmallow import RAISE, Schema, fields, pre_load, validate

from engine.data import DATASETS
from engine.losses import LOSSES
from engine.nn import ACTIVATIONS
from engine.spec import (
    BLOBS_CLASSES,
    DEMO_SPEC,
    ENGINES,
    MAX_METADATA_KEY,
    MAX_METADATA_PAIRS,
    MAX_METADATA_VALUE,
    MAX_URL_LENGTH,
    OPTIMIZER_DEFAULTS,
    WEBHOOK_EVENTS,
)

from .fields import BulkList, Integer, Number
from .problem import ProblemSchema

JOB_STATUSES = ["queued", "running", "succeeded", "failed", "cancelled"]
METADATA = {
    "type": "object",
    "maxProperties": MAX_METADATA_PAIRS,
    "propertyNames": {"minLength": 1, "maxLength": MAX_METADATA_KEY},
    "additionalProperties": {"type": "string", "maxLength": MAX_METADATA_VALUE},
    "description": f"Up to {MAX_METADATA_PAIRS} string pairs of your own (keys of 1 to "
    f"{MAX_METADATA_KEY} characters, values of at most {MAX_METADATA_VALUE}); "
    "GET /v1/jobs?metadata.KEY=VALUE finds the jobs that carry them.",
}
DEMO_MODEL, DEMO_DATASET = DEMO_SPEC["model"], DEMO_SPEC["dataset"]


class ModelSpecSchema(Schema):
    """The network: an MLP with `inputs` inputs and one entry of `layers` per layer."""

    class Meta:
        unknown = RAISE

    inputs = Integer(metadata={"minimum": 1, "description": "Defaults to the data's width."})
    layers = fields.List(
        Integer(metadata={"minimum": 1}),
        metadata={
            "minItems": 1,
            "default": DEMO_MODEL["layers"],
            "description": "Units per layer; "
            "the last layer is linear and has as many units as the loss needs.",
        },
    )
    activation = fields.String(
        metadata={"enum": list(ACTIVATIONS), "default": DEMO_MODEL["activation"]}
    )


class DatasetSchema(Schema):
    """A generated, seeded data set."""

    class Meta:
        unknown = RAISE

    name = fields.String(metadata={"enum": list(DATASETS), "default": DEMO_DATASET["name"]})
    samples = Integer(metadata={"minimum": 1, "default": DEMO_DATASET["samples"]})
    noise = Number(metadata={"minimum": 0, "default": DEMO_DATASET["noise"]})
    seed = Integer(metadata={"minimum": 0, "default": DEMO_DATASET["seed"]})
    classes = Integer(
        metadata={"minimum": 2, "default": BLOBS_CLASSES, "description": "blobs only."}
    )


class InlineDataSchema(Schema):
    """Data given in the request: rows of numbers and one label (or target row) per row."""

    class Meta:
        unknown = RAISE

    x = BulkList(fields.List(Number()), required=True, metadata={"minItems": 1})
    y = BulkList(
        fields.Raw(),
        required=True,
        metadata={
            "description": "-1/+1 for hinge, 0/1 for bce, class indices for ce; "
            "numbers (or rows of numbers) for mse."
        },
    )


class DataArgsSchema(Schema):
    class Meta:
        unknown = RAISE

    generated = fields.Boolean(
        load_default=False,
        metadata={
            "description": "true: a job that trains on a generated data set answers with that "
            "data (as generated, labels in the form its loss expects) rather than a 404."
        },
    )


class OptimizerSchema(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String(
        metadata={"enum": list(OPTIMIZER_DEFAULTS), "default": DEMO_SPEC["optimizer"]["name"]}
    )
    learning_rate = Number(metadata={"exclusiveMinimum": True, "minimum": 0})
    final_learning_rate = Number(
        allow_none=True,
        metadata={"minimum": 0, "description": "Decay linearly to this rate over the run."},
    )
    momentum = Number(metadata={"minimum": 0, "maximum": 1, "exclusiveMaximum": True})
    beta1 = Number(metadata={"minimum": 0, "maximum": 1, "exclusiveMaximum": True})
    beta2 = Number(metadata={"minimum": 0, "maximum": 1, "exclusiveMaximum": True})
    eps = Number(metadata={"exclusiveMinimum": True, "minimum": 0})


class WebhookSpecSchema(Schema):
    """Where to POST the job resource as it changes (signed; see GET /v1/webhooks/secret)."""

    class Meta:
        unknown = RAISE

    url = fields.String(
        required=True,
        metadata={
            "format": "uri",
            "maxLength": MAX_URL_LENGTH,
            "description": "http(s), no credentials; loopback, private, link-local and other "
            "non-public addresses are refused unless the service allows them.",
        },
    )
    events = fields.List(
        fields.String(metadata={"enum": list(WEBHOOK_EVENTS)}),
        metadata={
            "default": ["completed"],
            "description": "`completed` (succeeded, failed or cancelled) is always sent.",
        },
    )


class JobSpecSchema(Schema):
    """A training job; every field is optional (an empty object is micrograd's demo)."""

    class Meta:
        unknown = RAISE

    model = fields.Nested(ModelSpecSchema)
    data = fields.Nested(InlineDataSchema)
    dataset = fields.Nested(DatasetSchema)
    loss = fields.String(metadata={"enum": list(LOSSES), "default": DEMO_SPEC["loss"]})
    optimizer = fields.Nested(OptimizerSchema)
    l2 = Number(metadata={"minimum": 0, "default": DEMO_SPEC["l2"]})
    steps = Integer(metadata={"minimum": 1, "default": DEMO_SPEC["steps"]})
    batch_size = Integer(
        allow_none=True, metadata={"minimum": 1, "description": "null: full batch."}
    )
    seed = Integer(metadata={"minimum": 0, "default": DEMO_SPEC["seed"]})
    engine = fields.String(metadata={"enum": list(ENGINES), "default": DEMO_SPEC["engine"]})
    timeout = Integer(
        allow_none=True,
        metadata={
            "minimum": 1,
            "description": "Seconds the job may train, all its runs together; past them it "
            "fails with problem type `timeout`. null or absent: the service's default (an "
            "hour unless configured); the service also caps it (a day unless configured).",
        },
    )
    webhook = fields.Nested(WebhookSpecSchema, allow_none=True)
    metadata = fields.Dict(keys=fields.String(), values=fields.Raw(), metadata=METADATA)


class DataSummarySchema(Schema):
    """What a job resource says of its inline data; GET /v1/jobs/{id}/data returns it."""

    samples = fields.Integer(dump_only=True, metadata={"description": "Rows of x."})
    features = fields.Integer(dump_only=True, metadata={"description": "Numbers per row."})
    sha256 = fields.String(
        dump_only=True,
        metadata={
            "description": "Hex SHA-256 of the data's canonical JSON, Python's "
            'json.dumps(data, sort_keys=True, separators=(",", ":")): the body of '
            "GET /v1/jobs/{id}/data."
        },
    )


class JobResourceSpecSchema(JobSpecSchema):
    """A job's spec as the job resource shows it: defaults filled, inline data summarised
    (its metadata is the resource's own field)."""

    class Meta(JobSpecSchema.Meta):
        exclude = ("metadata",)

    data = fields.Nested(
        DataSummarySchema,
        metadata={"description": "Inline data, summarised (GET /v1/jobs/{id}/data has it)."},
    )


class ProgressSchema(Schema):
    step = fields.Integer(dump_only=True, metadata={"description": "Steps done."})
    steps = fields.Integer(dump_only=True, metadata={"description": "Steps in all."})


class MetricsSchema(Schema):
    loss = fields.Float(dump_only=True, allow_none=True)
    accuracy = fields.Float(dump_only=True, allow_none=True)


class JobSchema(Schema):
    """The job resource."""

    id = fields.String(dump_only=True)
    status = fields.String(dump_only=True, metadata={"enum": JOB_STATUSES})
    created_at = fields.String(dump_only=True, metadata={"format": "date-time"})
    started_at = fields.String(dump_only=True, allow_none=True, metadata={"format": "date-time"})
    finished_at = fields.String(dump_only=True, allow_none=True, metadata={"format": "date-time"})
    progress = fields.Nested(ProgressSchema, dump_only=True)
    metrics = fields.Nested(
        MetricsSchema,
        dump_only=True,
        metadata={"description": "Loss and accuracy at the latest recorded step."},
    )
    model_id = fields.String(dump_only=True, allow_none=True)
    error = fields.Nested(ProblemSchema, dump_only=True, allow_none=True)
    metadata = fields.Dict(
        keys=fields.String(), values=fields.String(), dump_only=True, metadata=METADATA
    )
    spec = fields.Nested(
        JobResourceSpecSchema,
        dump_only=True,
        metadata={"description": "As submitted, defaults filled; inline data summarised."},
    )


class JobListSchema(Schema):
    items = fields.List(fields.Nested(JobSchema), dump_only=True)
    next_cursor = fields.String(
        dump_only=True, allow_none=True, metadata={"description": "null on the last page."}
    )


class JobListArgsSchema(Schema):
    """The query of GET /v1/jobs."""

    class Meta:
        unknown = RAISE

    limit = fields.Integer(metadata={"minimum": 1, "description": "Jobs per page."})
    cursor = fields.String(metadata={"description": "`next_cursor` of the previous page."})
    status = fields.String(validate=validate.OneOf(JOB_STATUSES))

    @pre_load
    def _without_metadata_filters(self, data: Any, **kwargs: Any) -> Any:
        """`metadata.KEY=VALUE` filters are read by the route (their names are the client's)."""
        return {key: data[key] for key in data if not key.startswith("metadata.")}
