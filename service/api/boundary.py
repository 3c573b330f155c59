"""The one place exceptions become HTTP responses: each an RFC 9457 problem served as
`application/problem+json`, never a stack trace and never a 500 for bad input."""

import logging
from typing import Any

import redis
from flask import Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException

from engine.errors import InvalidInput, NumericError

from .. import problems
from ..errors import RateLimited, ServiceError, TooManyActiveJobs
from ..store.full import is_full
from ..strictjson import dumps

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger(__name__)


def problem_response(body: problems.Problem, headers: dict[str, str] | None = None) -> Response:
    return current_app.response_class(
        problem_json(body, request.path),
        status=body["status"],
        mimetype=PROBLEM_JSON,
        headers=headers,
    )


def problem_json(body: problems.Problem, path: str) -> str:
    """The problem as served: its instance the request's path unless it names its own."""
    body.setdefault("instance", path)
    return dumps(body)


def flatten(messages: Any, path: str = "") -> list[dict[str, str]]:
    """Marshmallow's nested messages as [{path, message}]: {"model": {"layers": {0: [...]}}}
    becomes path "model/layers/0"; `_schema` (the object as a whole) adds nothing."""
    if isinstance(messages, dict):
        entries = []
        for key, nested in messages.items():
            name = "" if key == "_schema" else str(key)
            entries += flatten(nested, f"{path}/{name}" if path and name else path or name)
        return entries
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [{"path": path, "message": message} for message in messages]
    return [{"path": path, "message": str(messages)}]


def from_http_exception(error: HTTPException) -> Response:
    """werkzeug's errors (404, 405, 413, 415...) and webargs' (validation, bad JSON)."""
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
    if "messages" in data and status == 422:
        # webargs keys messages by location ("json", "query"): paths start inside it.
        errors = [entry for nested in data["messages"].values() for entry in flatten(nested)]
        return problem_response(problems.invalid_input(errors), data.get("headers"))
    if "messages" in data:  # a body that is not JSON
        cause = data.get("exc") or getattr(error, "exc", None)
        detail = f"the body is not valid JSON: {cause}" if cause else "the body is not valid JSON"
        return problem_response(
            problems.problem("Malformed JSON", status, detail, "malformed-json")
        )
    if status == 413:
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        detail = f"the request body is over the limit of {limit} bytes"
        return problem_response(problems.problem(error.name, status, detail), headers)
    detail = f"there is no endpoint at {request.path}" if status == 404 else error.description
    return problem_response(problems.problem(error.name, status, detail), headers)


def from_service_error(error: ServiceError, headers: dict[str, str] | None = None) -> Response:
    body = problems.problem(
        error.title, error.status, error.detail, error.slug, errors=error.errors, **error.extensions
    )
    if headers is None and error.status == 503:
        headers = retry_after()
    return problem_response(body, headers)


def from_too_many_active_jobs(error: TooManyActiveJobs) -> Response:
    """429 naming the count and the cap; when to look again (ACTIVE_JOBS_RETRY_AFTER)."""
    return from_service_error(
        error, {"Retry-After": str(current_app.config["ACTIVE_JOBS_RETRY_AFTER"])}
    )


def from_rate_limited(error: RateLimited) -> Response:
    """Over a rate limit (service/api/ratelimit.py): 429 naming the budget. Its after-request
    hook sets Retry-After to the wait until the budget frees a request and adds the
    RateLimit-* headers; the whole window, here, stands in if it could not tell."""
    return problem_response(rate_limited(error), {"Retry-After": str(error.period)})


def rate_limited(error: RateLimited) -> problems.Problem:
    """The 429's problem (the hot path, api/hotpath.py, serves it too)."""
    detail = f"{error.description}: at most {error.limit}; try again after Retry-After seconds"
    return problems.problem("Too many requests", 429, detail, "rate-limited", limit=error.limit)


def from_invalid_input(error: InvalidInput) -> Response:
    """GraphError and SpecError from the engine: 422 with every place named."""
    return problem_response(problems.invalid_input(error.errors))


def from_numeric_error(error: NumericError) -> Response:
    return problem_response(problems.non_finite(error))


def retry_after() -> dict[str, str]:
    """The header of a 503: when Redis should be back (a restart takes a second or two)."""
    return {"Retry-After": str(current_app.config["RETRY_AFTER"])}


def from_redis_error(error: redis.RedisError) -> Response:
    """Redis unreachable (refused, or slower than REDIS_SOCKET_TIMEOUT), or full: 503,
    never a 500."""
    if is_full(error):
        return from_store_full()
    log.error("Redis failed on %s %s: %s", request.method, request.path, str(error)[:500])
    body = problems.problem(
        "Service unavailable",
        503,
        "the data store does not answer; try again shortly",
        "store-unavailable",
    )
    return problem_response(body, retry_after())


def from_store_full() -> Response:
    """Redis at its memory ceiling refused a write (it evicts nothing): 503 until retention
    or deletes make room; reads go on."""
    log.error("Redis is full (maxmemory): %s %s refused", request.method, request.path)
    body = problems.problem(
        "Data store full",
        503,
        "the data store is full and takes no new data for now; try again later",
        "store-full",
    )
    return problem_response(
        body, {"Retry-After": str(current_app.config["STORE_FULL_RETRY_AFTER"])}
    )


def from_unexpected(error: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.path, exc_info=error)
    return problem_response(
        problems.problem("Internal server error", 500, "the server failed; its log says why")
    )


def register(app: Flask) -> None:
    app.register_error_handler(HTTPException, from_http_exception)
    app.register_error_handler(RateLimited, from_rate_limited)
    app.register_error_handler(ServiceError, from_service_error)
    app.register_error_handler(TooManyActiveJobs, from_too_many_active_jobs)
    app.register_error_handler(InvalidInput, from_invalid_input)
    app.register_error_handler(NumericError, from_numeric_error)
    app.register_error_handler(redis.RedisError, from_redis_error)
    app.register_error_handler(Exception, from_unexpected)
