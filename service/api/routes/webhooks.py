"""Webhooks: the caller's signing secret, a job's deliveries, and the check of a job's
webhook URL at submit (service.webhook_targets)."""

from typing import Any

from flask import current_app
from flask.views import MethodView

from engine.errors import SpecError
from schemas import WebhookDeliveryListSchema, WebhookSecretSchema

from ...errors import NotFound
from ...webhook_targets import RefusedTarget, allow_private, check_at_submit
from ..auth import tenant
from ..extensions import services
from ..smorest import Blueprint

blp = Blueprint(
    "webhooks",
    __name__,
    url_prefix="/v1",
    description="Webhook deliveries are signed with your tenant's secret.",
)


def refuse_unsafe_webhook(spec: dict[str, Any]) -> None:
    """SpecError (422 naming `webhook/url`) if the job's webhook points where the service
    does not send: not http(s), credentials, a non-public address."""
    webhook = spec.get("webhook")
    if webhook is None:
        return
    try:
        check_at_submit(webhook["url"], allow_private(current_app.config["WEBHOOK_ALLOW_PRIVATE"]))
    except RefusedTarget as exc:
        raise SpecError([{"path": "webhook/url", "message": str(exc)}]) from None


@blp.route("/webhooks/secret")
class Secret(MethodView):
    @blp.response(200, WebhookSecretSchema)
    def get(self) -> dict[str, str]:
        """Your webhook signing secret (made at the first call, the same ever after)."""
        return {"secret": services().webhooks.get(tenant())}


@blp.route("/jobs/<job_id>/webhooks")
class JobDeliveries(MethodView):
    @blp.response(200, WebhookDeliveryListSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, job_id: str) -> dict[str, Any]:
        """A job's webhook deliveries, oldest first: each one's status, attempts (time, HTTP
        status or error, duration) and next attempt."""
        items = services().deliveries.of_job(job_id, tenant=tenant())
        if items is None:
            raise NotFound("job", job_id)
        return {"job_id": job_id, "items": items}
