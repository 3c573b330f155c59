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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property, partial
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
from .handover import Handover, handed_over

SUBMISSIONS = {("POST", "/v1/jobs"), ("POST", "/v1/graphs")}
"""The requests RATE_LIMIT_SUBMIT counts: each queues work or computes in the request."""

SETTINGS = ("RATE_LIMIT", "RATE_LIMIT_SUBMIT", "RATE_LIMIT_UNAUTHENTICATED")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limit:
    """One budget of a setting: `item` as `limits` parses it ("3/2 seconds")."""

    setting: str
    item: RateLimitItem
    message: str

    @cached_property  # read on every request: worked out once
    def period(self) -> int:
        return self.item.get_expiry()

    @cached_property
    def budget(self) -> Budget:
        item = self.item
        name = f"{self.setting.lower()}/{item.amount}/{item.multiples}/{item.GRANULARITY.name}"
        return Budget(name, item.amount, float(self.period))


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
        """Whose budget the current request spends and which of its budgets (budgets_of)."""
        if refused():
            return f"address:{request.remote_addr}", self.limits["RATE_LIMIT_UNAUTHENTICATED"]
        submission = (request.method, request.path) in SUBMISSIONS
        return self.budgets_of(g.get("key_id"), request.remote_addr, submission)

    def budgets_of(
        self, key_id: str | None, address: str | None, submission: bool
    ) -> tuple[str, list[Limit]]:
        """Whose budget a request with a valid key (or, with AUTH off, none) spends: its
        key's id, else its client address; and which budgets, the tighter first."""
        caller = f"key:{key_id}" if key_id else f"address:{address}"
        if submission:
            return caller, self.limits["RATE_LIMIT_SUBMIT"] + self.limits["RATE_LIMIT"]
        return caller, self.limits["RATE_LIMIT"]

    def check(self) -> Response | None:
        """before_request: count the request, or refuse it (RateLimited: 429). A request
        the hot path began was counted there: its handover is taken instead."""
        handover = handed_over()
        if handover is not None:
            return take(handover)
        if not protected(request.path):
            return None
        caller, limits = self.budgets()
        if not limits:
            return None
        read = self.reads.get((request.method, request.endpoint or ""))
        key = read(request.view_args or {}) if read else None
        try:
            spent, found = self.count(caller, limits, key)
        except redis.RedisError as error:  # let it through: the route meets Redis itself
            log.warning("rate limit not counted: Redis failed: %s", error)
            return None
        if found is not None:
            g.read_ahead = found
        g.rate_limit = spent
        if spent is not None and spent.breached:
            raise refusal(spent)
        return None

    def count(
        self,
        caller: str,
        limits: list[Limit],
        read: str | None = None,
        writes: Sequence[Sequence[Any]] = (),
    ) -> tuple[Spent | None, dict[bytes, bytes] | None]:
        """Count one request of `caller` against `limits` (refused: counted in none): what
        its tightest budget says (None without budgets), and the hash at key `read`, read
        in the same round trip (None: not asked, or the request was refused). `writes`
        (Redis commands) run in the same call if the request is counted. Raises
        redis.RedisError."""
        budgets = [limit.budget for limit in limits]
        breached, windows, found = self.counts.spend(caller, budgets, read, writes=writes)
        if not limits:
            return None, found
        if breached is not None:
            return Spent(limits[breached], windows[breached], True), found
        left = [
            limit.item.amount - window.counted
            for limit, window in zip(limits, windows, strict=True)
        ]
        tightest = left.index(min(left))
        return Spent(limits[tightest], windows[tightest], False), found


def refusal(spent: Spent) -> RateLimited:
    limit = spent.limit
    return RateLimited(limit.message, str(limit.item), limit.period)


def take(handover: Handover) -> Response | None:
    """A request the hot path began: its counts and reads as the hooks would have left
    them, then its outcome (a refusal or an error raised, a response returned)."""
    g.rate_limit = handover.spent
    if handover.read_ahead is not None:
        g.read_ahead = handover.read_ahead
    if handover.spent is not None and handover.spent.breached:
        raise refusal(handover.spent)
    if isinstance(handover.outcome, Exception):
        raise handover.outcome
    return handover.outcome


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
    if spent is not None and response.status_code != 503:
        for name, value in headers_of(spent):
            response.headers[name] = value  # a 429's Retry-After replaces the error's own
    return response


def headers_of(spent: Spent) -> list[tuple[str, str]]:
    item, period = spent.limit.item, spent.limit.period
    reset = max(0, math.ceil(spent.window.oldest + period - time.time()))
    remaining = max(0, item.amount - spent.window.counted)
    headers = [
        ("RateLimit-Limit", str(item.amount)),
        ("RateLimit-Remaining", str(remaining)),
        ("RateLimit-Reset", str(reset)),
        ("RateLimit-Policy", f"{item.amount};w={period}"),
    ]
    if spent.breached:
        headers.append(("Retry-After", str(max(1, reset))))
    return headers


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
