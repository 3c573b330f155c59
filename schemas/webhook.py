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
