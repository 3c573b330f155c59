"""The caller's webhook signing secret."""

from flask.views import MethodView

from schemas import WebhookSecretSchema

from ..auth import tenant
from ..extensions import services
from ..smorest import Blueprint

blp = Blueprint(
    "webhooks",
    __name__,
    url_prefix="/v1/webhooks",
    description="Webhook deliveries are signed with your tenant's secret.",
)


@blp.route("/secret")
class Secret(MethodView):
    @blp.response(200, WebhookSecretSchema)
    def get(self) -> dict[str, str]:
        """Your webhook signing secret (made at the first call, the same ever after)."""
        return {"secret": services().webhooks.get(tenant())}
