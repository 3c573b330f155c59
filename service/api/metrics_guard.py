"""Who may read GET /metrics (the METRICS and METRICS_TOKEN settings), and the endpoint's
entry in the OpenAPI document.

"Loopback" is the TCP peer's address as gunicorn gives it (REMOTE_ADDR; no X-Forwarded-For
is believed): behind a proxy on the same machine every client is loopback, which is what
METRICS=token is for."""

import hmac
import ipaddress

from apispec import APISpec
from flask import Flask, Response, abort, request

from .. import problems
from .boundary import problem_response

CHALLENGE = 'Bearer realm="gradserve-metrics"'
ENDPOINT = "metrics"
"""GET /metrics's Flask endpoint name."""
TOKEN_SCHEME = "metricsToken"
"""The OpenAPI security scheme of GET /metrics's token."""


def loopback(address: str | None) -> bool:
    """Is the peer's address a loopback one (127.0.0.0/8, ::1, or IPv4-mapped 127.x)?"""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False  # a unix socket's peer has none: whoever it is, it is not judged local
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def refusal(mode: str, token: str | None) -> Response | None:
    """None if this request may read the metrics; else its answer (404, or 401 when a token
    would open them)."""
    if mode == "open" or (mode == "loopback" and loopback(request.remote_addr)):
        return None
    if token is None:
        abort(404)
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
        return None
    detail = "the metrics need their token: send `Authorization: Bearer <GRADSERVE_METRICS_TOKEN>`"
    body = problems.problem("Unauthorized", 401, detail, "unauthorized")
    return problem_response(body, {"WWW-Authenticate": CHALLENGE})


def document(app: Flask, spec: APISpec) -> None:
    """GET /metrics in the OpenAPI document, unless METRICS is off (it is no smorest route:
    its body is text)."""
    rule = next((r for r in app.url_map.iter_rules() if r.endpoint == ENDPOINT), None)
    if rule is None:
        return
    spec.components.security_scheme(
        TOKEN_SCHEME,
        {
            "type": "http",
            "scheme": "bearer",
            "description": "GRADSERVE_METRICS_TOKEN, for GET /metrics from a client that "
            "is not on loopback (or from any client with GRADSERVE_METRICS=token).",
        },
    )
    text = {"schema": {"type": "string"}}
    operation = {
        "tags": ["health"],
        "operationId": "getMetrics",
        "summary": "Prometheus metrics, for operators.",
        "description": "Requests by route and status, latencies, queue depth, jobs by "
        "status, live workers, webhook deliveries. Who may read them is set by "
        "GRADSERVE_METRICS: by default clients on loopback, and any client with the token.",
        "security": [{}, {TOKEN_SCHEME: []}],
        "responses": {
            "200": {
                "description": "The metrics (Prometheus text, or OpenMetrics if asked).",
                "content": {"text/plain": text, "application/openmetrics-text": text},
            },
            "401": "UNAUTHORIZED",
            "404": "NOT_FOUND",
        },
    }
    spec.path(rule=rule, operations={"get": operation})
