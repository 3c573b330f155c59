"""Rate limits (Flask-Limiter, its counters in the service's own Redis): every /v1 request
counts against its API key's budget (RATE_LIMIT), a submission against a tighter one too
(RATE_LIMIT_SUBMIT), and a request whose key was refused against its client address's
(RATE_LIMIT_UNAUTHENTICATED), never against a key's. With AUTH off the address stands for
the key. Health, the OpenAPI document and the docs pages are not limited.

The windows move (Flask-Limiter's `moving-window`): a request leaves its window exactly one
period after it was made, so a 429's `Retry-After` (seconds until the oldest request in the
window leaves it) is a wait after which the next request gets through.

A limited response carries `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`
(seconds until the oldest counted request leaves the window) and `RateLimit-Policy`
(`<limit>;w=<seconds>`) of its tightest budget, written here from Flask-Limiter's
`current_limit`: its own `headers_enabled` would write `X-RateLimit-*`, the reset as a Unix
time, and a rounded-down `Retry-After` on every response.

When Redis fails the limiter lets the request through (`swallow_errors`): the route's own
Redis call then answers 503 if Redis is gone, and reads go on when Redis is only full (its
memory ceiling refuses the limiter's writes)."""

import logging
import math
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import redis
from apispec import APISpec, BasePlugin
from flask import Flask, Response, g, request
from flask_limiter import ApplicationLimit, Limiter
from flask_smorest.utils import prepare_response
from limits import parse_many

from schemas import ProblemSchema

from ..config import auth_enabled
from .auth import protected, protected_operations, refused
from .boundary import PROBLEM_JSON
from .extensions import Services

SUBMISSIONS = {("POST", "/v1/jobs"), ("POST", "/v1/graphs")}
"""The requests RATE_LIMIT_SUBMIT counts: each queues work or computes in the request."""

SETTINGS = ("RATE_LIMIT", "RATE_LIMIT_SUBMIT", "RATE_LIMIT_UNAUTHENTICATED")

HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy")

log = logging.getLogger(__name__)


def caller() -> str:
    """Whose budget a request spends: its API key's id, else (a refused key, AUTH off) its
    client address."""
    key_id = g.get("key_id")
    return f"key:{key_id}" if key_id else f"address:{request.remote_addr}"


def submission() -> bool:
    return (request.method, request.path) in SUBMISSIONS


def register(app: Flask, services: Services) -> Limiter:
    """Limit the app's /v1 requests, counting in the store's Redis through its connection
    pool (its timeout and retry). Register after auth.register and before
    auth.register_refusal. A limit that does not parse is a ValueError naming its setting."""
    config = app.config
    for setting in SETTINGS:
        check_limit(setting, config[setting])
    whose = "with this API key" if auth_enabled(config["AUTH"]) else "from this address"

    def budget(setting: str, scope: str, what: str, exempt: Callable[[], bool]) -> ApplicationLimit:
        return ApplicationLimit(
            limit_provider=config[setting],
            scope=scope,
            exempt_when=exempt,
            error_message=f"too many {what} ({setting})",
        )

    limiter = Limiter(
        caller,
        application_limits=[  # a submission's first: its headers are the tighter budget's
            budget(
                "RATE_LIMIT_SUBMIT",
                "submissions",
                f"submissions {whose}",
                lambda: refused() or not submission(),
            ),
            budget("RATE_LIMIT", "requests", f"requests {whose}", refused),
            budget(
                "RATE_LIMIT_UNAUTHENTICATED",
                "unauthenticated",
                "requests without a valid API key from this address",
                lambda: not refused(),
            ),
        ],
        strategy="moving-window",
        storage_uri=storage_uri(config["REDIS_URL"]),
        storage_options={
            "connection_pool": services.store.redis.connection_pool,
            "key_prefix": services.store.keys.rate_limits(),
        },
        swallow_errors=True,
        headers_enabled=False,
        # Every /v1 request counts, also one that no route matches (404, 405).
        request_identifier=lambda: request.endpoint or "unrouted",
    )
    limiter.request_filter(lambda: not protected(request.path))
    limiter.init_app(app)
    app.after_request(partial(write_headers, limiter))
    return limiter


def check_limit(setting: str, value: object) -> None:
    """A rate limit setting is `N/period`, several joined by `;`, or empty (no limit)."""
    try:
        if not isinstance(value, str):
            raise ValueError(f"not a string: {value!r}")
        if value.strip() and any(item.amount < 1 for item in parse_many(value)):
            raise ValueError("a limit of 0 refuses everything; leave it empty for none")
    except ValueError as error:
        raise ValueError(
            f"GRADSERVE_{setting} must be like 600/minute (N per second, minute, hour or day; "
            f"several joined by ;), not {value!r}: {error}"
        ) from None


def storage_uri(redis_url: str) -> str:
    """The URI that picks Flask-Limiter's Redis storage (`limits` hands a redis:// URL,
    ACL user and password included, to redis.from_url; the connection pool passed beside
    it is what is used)."""
    return f"redis+{redis_url}" if redis_url.startswith("unix://") else redis_url


def write_headers(limiter: Limiter, response: Response) -> Response:
    """The RateLimit-* headers of the request's tightest budget, and a 429's Retry-After
    (none on a 503: Redis did not answer, and asking again would only add a wait)."""
    limit = limiter.current_limit
    if limit is None or response.status_code == 503:
        return response
    try:
        reset_at, remaining = limit.window
    except redis.RedisError as error:  # the answer goes without them
        log.warning("rate limit headers left out: Redis failed: %s", error)
        return response
    reset = max(0, math.ceil(reset_at - time.time()))
    item = limit.limit
    response.headers.update(
        zip(
            HEADERS,
            (str(item.amount), str(remaining), str(reset), f"{item.amount};w={item.get_expiry()}"),
            strict=True,
        )
    )
    if limit.breached:
        response.headers["Retry-After"] = str(max(1, reset))
    return response


class OpenApiPlugin(BasePlugin):
    """The OpenAPI document's side: every /v1 operation may answer 429, with the headers."""

    RESPONSE = "RATE_LIMITED"

    def init_spec(self, spec: APISpec) -> None:
        text = {"schema": {"type": "integer"}}
        response: dict[str, Any] = {
            "description": "Over a rate limit of the API key (`rate-limited`), or, for a "
            "job, over the tenant's cap on active jobs (`too-many-active-jobs`).",
            "schema": ProblemSchema,
            "headers": {
                "Retry-After": {"description": "Seconds to wait before trying again.", **text},
                "RateLimit-Limit": {"description": "Requests the budget allows.", **text},
                "RateLimit-Remaining": {"description": "Requests left in it now.", **text},
                "RateLimit-Reset": {
                    "description": "Seconds until the oldest counted request leaves it.",
                    **text,
                },
                "RateLimit-Policy": {
                    "description": "The budget: `<requests>;w=<window in seconds>`.",
                    "schema": {"type": "string"},
                },
            },
        }
        prepare_response(response, spec, PROBLEM_JSON)
        spec.components.response(self.RESPONSE, response)

    def operation_helper(
        self, path: str | None = None, operations: dict | None = None, **kwargs: Any
    ) -> None:
        for operation in protected_operations(path, operations):
            operation.setdefault("responses", {}).setdefault(429, self.RESPONSE)
