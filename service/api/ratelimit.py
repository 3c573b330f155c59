"""Rate limits: every /v1 request counts against its API key's budget (RATE_LIMIT), a
submission against a tighter one too (RATE_LIMIT_SUBMIT), and a request whose key was
refused against its client address's (RATE_LIMIT_UNAUTHENTICATED), never against a key's.
With AUTH off the address stands for the key. Health, the OpenAPI document and the docs
pages are not limited.

The windows move: a request leaves its window exactly one period after it was made, so a
429's `Retry-After` (seconds until the oldest request in the window leaves it) is a wait
after which the next request gets through. A refused request spends none of its budgets.

Every budget a request spends is counted, and read back, in one Lua call
(store/ratelimits.py): one Redis round trip per request, which also gives the headers,
and for a polled job (`GET /v1/jobs/{id}`) reads the job too, so that request makes no
other. A
limited response carries `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`
(seconds until the oldest counted request leaves the window) and `RateLimit-Policy`
(`<limit>;w=<seconds>`) of its tightest budget: the one that refused it, else the one with
the fewest requests left.

When Redis fails the limiter lets the request through without the headers: the route's own
Redis call then answers 503 if Redis is gone, and reads go on when Redis is only full (its
memory ceiling refuses the limiter's writes)."""

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import redis
from apispec import APISpec, BasePlugin
from flask import Flask, Response, g, request
from flask_smorest.utils import prepare_response
from limits import RateLimitItem, parse_many

from schemas import ProblemSchema

from ..config import auth_enabled
from ..errors import RateLimited
from ..store import Budget, RateCounts, Window
from .auth import protected, protected_operations, refused
from .boundary import PROBLEM_JSON
from .extensions import Services

SUBMISSIONS = {("POST", "/v1/jobs"), ("POST", "/v1/graphs")}
"""The requests RATE_LIMIT_SUBMIT counts: each queues work or computes in the request."""

SETTINGS = ("RATE_LIMIT", "RATE_LIMIT_SUBMIT", "RATE_LIMIT_UNAUTHENTICATED")

HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limit:
    """One budget of a setting: `item` as `limits` parses it ("3/2 seconds")."""

    setting: str
    item: RateLimitItem
    message: str

    @property
    def budget(self) -> Budget:
        item = self.item
        name = f"{self.setting.lower()}/{item.amount}/{item.multiples}/{item.GRANULARITY.name}"
        return Budget(name, item.amount, float(item.get_expiry()))


@dataclass(frozen=True)
class Spent:
    """What the request's tightest budget says, for its headers."""

    limit: Limit
    window: Window
    breached: bool


ReadAhead = Callable[[dict[str, Any]], str | None]
"""The Redis key of the record a route reads first, from its URL's arguments (None: none)."""


class Limiter:
    def __init__(
        self,
        counts: RateCounts,
        limits: dict[str, list[Limit]],
        reads: dict[tuple[str, str], ReadAhead] | None = None,
    ) -> None:
        self.counts, self.limits, self.reads = counts, limits, reads or {}

    def budgets(self) -> tuple[str, list[Limit]]:
        """Whose budget the request spends (its API key's id; a refused key's or, with AUTH
        off, anyone's client address) and which of its budgets, the tighter first."""
        if refused():
            return f"address:{request.remote_addr}", self.limits["RATE_LIMIT_UNAUTHENTICATED"]
        key_id = g.get("key_id")
        caller = f"key:{key_id}" if key_id else f"address:{request.remote_addr}"
        if (request.method, request.path) in SUBMISSIONS:
            return caller, self.limits["RATE_LIMIT_SUBMIT"] + self.limits["RATE_LIMIT"]
        return caller, self.limits["RATE_LIMIT"]

    def check(self) -> None:
        """before_request: count the request, or refuse it (RateLimited: 429)."""
        if not protected(request.path):
            return
        caller, limits = self.budgets()
        if not limits:
            return
        read = self.reads.get((request.method, request.endpoint or ""))
        key = read(request.view_args or {}) if read else None
        try:
            breached, windows, found = self.counts.spend(
                caller, [limit.budget for limit in limits], key
            )
        except redis.RedisError as error:  # let it through: the route meets Redis itself
            log.warning("rate limit not counted: Redis failed: %s", error)
            return
        if found is not None:
            g.read_ahead = found
        if breached is None:
            left = [
                limit.item.amount - window.counted
                for limit, window in zip(limits, windows, strict=True)
            ]
            tightest = left.index(min(left))
            g.rate_limit = Spent(limits[tightest], windows[tightest], False)
            return
        limit = limits[breached]
        g.rate_limit = Spent(limit, windows[breached], True)
        raise RateLimited(limit.message, str(limit.item), limit.item.get_expiry())


def read_ahead() -> dict[bytes, bytes] | None:
    """The record this request's route reads first, if the limiter read it with its count
    (one round trip instead of two for a polled job); None: the route reads it itself."""
    return g.pop("read_ahead", None)


def register(app: Flask, services: Services) -> Limiter:
    """Limit the app's /v1 requests, counting in the store's Redis. Register after
    auth.register and before auth.register_refusal. A limit that does not parse is a
    ValueError naming its setting."""
    config = app.config
    for setting in SETTINGS:
        check_limit(setting, config[setting])
    whose = "with this API key" if auth_enabled(config["AUTH"]) else "from this address"
    what = {
        "RATE_LIMIT_SUBMIT": f"submissions {whose}",
        "RATE_LIMIT": f"requests {whose}",
        "RATE_LIMIT_UNAUTHENTICATED": "requests without a valid API key from this address",
    }
    limits = {
        setting: [
            Limit(setting, item, f"too many {what[setting]} ({setting})")
            for item in (parse_many(config[setting]) if config[setting].strip() else [])
        ]
        for setting in SETTINGS
    }
    store = services.store
    reads: dict[tuple[str, str], ReadAhead] = {  # the polled job: GET /v1/jobs/{id}
        ("GET", "jobs.Job"): lambda args: store.record_key(str(args.get("job_id", ""))),
    }
    limiter = Limiter(RateCounts(store.redis, store.keys.prefix), limits, reads)
    app.before_request(limiter.check)
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


def write_headers(limiter: Limiter, response: Response) -> Response:
    """The RateLimit-* headers of the request's tightest budget, and a 429's Retry-After
    (none on a 503: Redis did not answer, and asking again would only add a wait)."""
    spent: Spent | None = g.get("rate_limit")
    if spent is None or response.status_code == 503:
        return response
    item = spent.limit.item
    period = item.get_expiry()
    reset = max(0, math.ceil(spent.window.oldest + period - time.time()))
    remaining = max(0, item.amount - spent.window.counted)
    headers = response.headers
    headers["RateLimit-Limit"] = str(item.amount)
    headers["RateLimit-Remaining"] = str(remaining)
    headers["RateLimit-Reset"] = str(reset)
    headers["RateLimit-Policy"] = f"{item.amount};w={period}"
    if spent.breached:
        headers["Retry-After"] = str(max(1, reset))
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
