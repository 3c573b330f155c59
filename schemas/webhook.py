"""The webhook signing secret."""

from marshmallow import Schema, fields


class WebhookSecretSchema(Schema):
    secret = fields.String(
        dump_only=True,
        metadata={
            "description": "`whsec_` and the base64 of 32 random bytes (the Standard Webhooks "
            "format): the key every delivery to you is signed with (HMAC-SHA256).",
            "example": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw5ua2pyEaWmY=",
        },
    )


class WebhookAttemptSchema(Schema):
    at = fields.String(dump_only=True, metadata={"format": "date-time"})
    http_status = fields.Integer(
        dump_only=True, allow_none=True, metadata={"description": "null: no HTTP answer."}
    )
    error = fields.String(
        dump_only=True,
        allow_none=True,
        metadata={"description": "Why the attempt failed (null: delivered)."},
    )
    duration_ms = fields.Float(dump_only=True)


class WebhookDeliverySchema(Schema):
    id = fields.String(dump_only=True, metadata={"description": "The `webhook-id` header."})
    event = fields.String(dump_only=True, metadata={"enum": ["start", "progress", "completed"]})
    status = fields.String(
        dump_only=True,
        metadata={
            "enum": ["pending", "delivered", "failed", "superseded"],
            "description": "superseded: a progress delivery still pending when the job "
            "finished (its completed delivery says the rest).",
        },
    )
    created_at = fields.String(dump_only=True, metadata={"format": "date-time"})
    next_attempt_at = fields.String(
        dump_only=True,
        allow_none=True,
        metadata={"format": "date-time", "description": "null unless pending."},
    )
    attempts = fields.List(fields.Nested(WebhookAttemptSchema), dump_only=True)


class WebhookDeliveryListSchema(Schema):
    job_id = fields.String(dump_only=True)
    items = fields.List(
        fields.Nested(WebhookDeliverySchema),
        dump_only=True,
        metadata={"description": "Oldest first."},
    )
