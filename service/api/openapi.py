"""The OpenAPI document's own parts: its description, and every operation's operationId
(the names generated clients give their methods), all in one table."""

from typing import Any

from apispec import APISpec, BasePlugin

DESCRIPTION = """\
Gradient computation as a service, on a scalar autograd engine in the spirit of
micrograd: evaluate `graph/1` expression graphs (every node's value and the gradient of
the output with respect to it), and train MLPs as jobs on background workers, then read
their loss history and models and predict with them.

Every `/v1` request carries an API key (`Authorization: Bearer <key>`). Errors are RFC 9457
problem details (`application/problem+json`) naming each bad field or node. Answers carry
the key's rate-limit budget (`RateLimit-*` headers); a 429 or 503 says in `Retry-After`
when to try again.
"""

OPERATION_IDS: dict[tuple[str, str], str] = {
    ("post", "/v1/graphs"): "evaluateGraph",
    ("get", "/v1/graphs/{graph_id}"): "getGraph",
    ("post", "/v1/jobs"): "createJob",
    ("get", "/v1/jobs"): "listJobs",
    ("get", "/v1/jobs/{job_id}"): "getJob",
    ("delete", "/v1/jobs/{job_id}"): "deleteJob",
    ("post", "/v1/jobs/{job_id}/cancel"): "cancelJob",
    ("get", "/v1/jobs/{job_id}/history"): "getJobHistory",
    ("get", "/v1/jobs/{job_id}/data"): "getJobData",
    ("get", "/v1/jobs/{job_id}/events"): "getJobEvents",
    ("get", "/v1/jobs/{job_id}/webhooks"): "listJobWebhooks",
    ("get", "/v1/models/{model_id}"): "getModel",
    ("delete", "/v1/models/{model_id}"): "deleteModel",
    ("post", "/v1/models/{model_id}/predict"): "predict",
    ("get", "/v1/webhooks/secret"): "getWebhookSecret",
    ("get", "/healthz"): "getHealth",
    ("get", "/readyz"): "getReadiness",
    ("get", "/metrics"): "getMetrics",
}
"""(method, path) -> operationId: a new route needs its line here (a test checks that every
operation in the document has one, and that none repeats)."""


class OperationIds(BasePlugin):
    """Sets each operation's operationId from OPERATION_IDS (an operation missing from the
    table is left without one, for the test to name)."""

    def init_spec(self, spec: APISpec) -> None:
        spec.options.setdefault("info", {})["description"] = DESCRIPTION

    def operation_helper(
        self, path: str | None = None, operations: dict | None = None, **kwargs: Any
    ) -> None:
        for method, operation in (operations or {}).items():
            operation_id = OPERATION_IDS.get((method, path or ""))
            if operation_id is not None:
                operation.setdefault("operationId", operation_id)
