"""The answers of the liveness and readiness probes."""

from marshmallow import Schema, fields


class HealthSchema(Schema):
    status = fields.String(
        dump_only=True, metadata={"enum": ["ok"], "description": "The process serves requests."}
    )


class ReadinessSchema(Schema):
    status = fields.String(
        dump_only=True, metadata={"enum": ["ready"], "description": "Redis answers."}
    )
