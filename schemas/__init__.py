"""Marshmallow schemas of every request and response body: they validate input and
describe the API in its OpenAPI document. No Flask, no Redis."""

from .graph import GraphResourceSchema, GraphResultSchema, GraphSchema, NodeSchema
from .health import HealthSchema, ReadinessSchema
from .history import HistoryArgsSchema, HistorySchema
from .job import (
    JOB_STATUSES,
    DataArgsSchema,
    DataSummarySchema,
    InlineDataSchema,
    JobListArgsSchema,
    JobListSchema,
    JobSchema,
    JobSpecSchema,
    MetricsSchema,
    ModelSpecSchema,
)
from .model import ModelSchema, PredictRequestSchema, PredictResponseSchema
from .problem import ErrorEntrySchema, ProblemSchema
from .webhook import WebhookDeliveryListSchema, WebhookSecretSchema

__all__ = [
    "JOB_STATUSES",
    "DataSummarySchema",
    "ErrorEntrySchema",
    "GraphResourceSchema",
    "GraphResultSchema",
    "GraphSchema",
    "DataArgsSchema",
    "HealthSchema",
    "HistoryArgsSchema",
    "HistorySchema",
    "InlineDataSchema",
    "JobListArgsSchema",
    "JobListSchema",
    "JobSchema",
    "JobSpecSchema",
    "MetricsSchema",
    "ModelSchema",
    "ModelSpecSchema",
    "NodeSchema",
    "PredictRequestSchema",
    "PredictResponseSchema",
    "ProblemSchema",
    "ReadinessSchema",
    "WebhookDeliveryListSchema",
    "WebhookSecretSchema",
]
