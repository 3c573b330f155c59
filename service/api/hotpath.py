"""The two requests that are most of the API's traffic, answered below Flask: a polled job
(`GET /v1/jobs/{id}`) and a small graph evaluated in the request (`POST /v1/graphs` with a
body of at most HEAVY_BODY_BYTES). Flask's request context, routing, hooks and response
object cost more than the work of either (docs/BENCHMARKS.md); here each request makes the
same calls the app's hooks and route make, on the same stores, for the same answer.

Only the plain case is answered here. A request this path does not take on (another route
or method, a query string, `Prefer`, no valid key, a body that is not plainly JSON or is
over the bound, a graph the app would refuse or queue) goes to Flask untouched. A request
refused by its budget gets the app's 429, made here. One it has begun (its key checked,
the request counted) but does not finish (no such job, a record the route cannot read, an
answer big enough to gzip, Redis failing) goes to Flask with a Handover (api/handover.py)
of what was done, so nothing is counted or written twice."""

import io
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import redis
from flask import Flask, Response
from werkzeug.exceptions import HTTPException

from schemas import GraphSchema
from schemas.graph import plain_graph

from ..store import LOCAL_TENANT
from ..store.ids import ID_PATTERN
from ..strictjson import dumps
from .auth import bearer
from .body import read_body
from .boundary import PROBLEM_JSON, problem_json, rate_limited
from .extensions import Services
from .handover import KEY, Handover
from .jsonbody import load_body
from .metrics import ROUTE, StartResponse, WSGIApplication, WSGIEnvironment
from .ratelimit import Limit, Limiter, Spent, headers_of, refusal
from .routes.graphs import JSON, evaluated, graph_json, parse
from .routes.jobs import JOB

JOBS, JOB_ROUTE, GRAPHS = "/v1/jobs/", "/v1/jobs/<job_id>", "/v1/graphs"
"""The paths served here (the job's as its prefix), and the routes metrics count them by."""
TOO_MANY = "429 TOO MANY REQUESTS"  # as werkzeug words it
GRAPH_SCHEMA = GraphSchema()
REMEMBERED_BODIES = REMEMBERED_CALLERS = 1024
"""Polled jobs whose body a process remembers (each with the record it was made from), and
refused callers it remembers (each until its budget has room again)."""

log = logging.getLogger(__name__)


class HotPath:
    """WSGI middleware around the Flask app (inside the metrics middleware, which counts
    what it answers too)."""

    def __init__(
        self,
        app: WSGIApplication,
        config: Mapping[str, Any],
        services: Services,
        limiter: Limiter,
        auth: bool,
    ) -> None:
        self.app, self.services, self.limiter, self.auth = app, services, limiter, auth
        self.config = config
        self.body_bound = min(config["HEAVY_BODY_BYTES"], config["MAX_CONTENT_LENGTH"])
        self.bodies: dict[str, tuple[str, dict[bytes, bytes], bytes]] = {}
        """job id: (tenant, record, body). The record is read from Redis on every request;
        a record read again unchanged (a queued or finished job, a running one between two
        steps) is answered with the body made from it, not decoded and dumped again."""
        self.refused: dict[str, float] = {}
        """caller: when the budget that refused it last has room again (Unix time)."""

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if not (environ.get("QUERY_STRING") or "HTTP_PREFER" in environ):
            method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
            if method == "GET" and path.startswith(JOBS):
                job_id = path[len(JOBS) :]
                if ID_PATTERN.fullmatch(job_id):
                    return self.job(environ, start_response, job_id)
            elif method == "POST" and path == GRAPHS and self.plain_json(environ):
                return self.graph(environ, start_response)
        return self.app(environ, start_response)

    def plain_json(self, environ: WSGIEnvironment) -> bool:
        """A JSON body of a declared length within the bound (not chunked)."""
        mimetype = environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()
        length = environ.get("CONTENT_LENGTH", "")
        return (
            mimetype == JSON
            and length.isdigit()
            and int(length) <= self.body_bound
            and "HTTP_TRANSFER_ENCODING" not in environ
        )

    def caller(self, environ: WSGIEnvironment) -> tuple[str, str | None] | None:
        """The tenant and key id of a request with a valid key (AUTH off: tenant `local`'s);
        None when the app must answer it (its 401, or Redis failing it)."""
        if not self.auth:
            return LOCAL_TENANT, None
        given, token = bearer(environ.get("HTTP_AUTHORIZATION"))
        if not given:
            return None
        keys = self.services.keys
        try:
            tenant = keys.authenticate(token)
        except redis.RedisError:
            return None
        return (tenant, keys.key_id(token)) if tenant is not None else None

    def budgets(
        self, environ: WSGIEnvironment, who: tuple[str, str | None], submission: bool
    ) -> tuple[str, list[Limit]]:
        """Whose budgets the request spends, and which (the rate limiter's hook's)."""
        return self.limiter.budgets_of(who[1], environ.get("REMOTE_ADDR"), submission)

    def count(
        self,
        who: tuple[str, str | None],
        budgets: tuple[str, list[Limit]],
        read: str | None = None,
        writes: Sequence[Sequence[Any]] = (),
    ) -> tuple[Handover, bool]:
        """The request counted as the rate limiter's hook counts it, the record at `read`
        read and `writes` run in the same call (if counted): the handover so far, and
        whether the request goes on here (False: refused, or Redis failed: the app answers
        it as it would)."""
        tenant, key_id = who
        caller, limits = budgets
        try:
            spent, record = self.limiter.count(caller, limits, read, writes)
        except redis.RedisError as error:  # as the hook: through, and the route meets Redis
            log.warning("rate limit not counted: Redis failed: %s", error)
            return Handover(tenant, key_id), False
        if spent is not None and spent.breached:
            if len(self.refused) >= REMEMBERED_CALLERS:
                del self.refused[next(iter(self.refused))]  # the one remembered first
            self.refused[caller] = spent.window.oldest + spent.limit.period
        return Handover(tenant, key_id, spent, record), spent is None or not spent.breached

    def job(
        self, environ: WSGIEnvironment, start_response: StartResponse, job_id: str
    ) -> Iterable[bytes]:
        who = self.caller(environ)
        if who is None:
            return self.app(environ, start_response)
        store = self.services.store
        budgets = self.budgets(environ, who, False)
        handover, going = self.count(who, budgets, read=store.record_key(job_id))
        if not going:
            return self.stop(environ, start_response, JOB_ROUTE, handover)
        body = self.job_body(job_id, handover.tenant, handover.read_ahead)
        if body is None or len(body) >= self.config["GZIP_MIN_BYTES"]:
            return self.hand_over(environ, start_response, handover)
        headers = [("Vary", "Prefer")]
        return respond(environ, start_response, JOB_ROUTE, "200 OK", body, headers, handover.spent)

    def job_body(self, job_id: str, tenant: str, record: dict[bytes, bytes] | None) -> bytes | None:
        """The job's body made from its record (None: no job of `tenant`'s, or a record the
        route cannot read either: it answers the failure)."""
        remembered = self.bodies.get(job_id)
        if remembered is not None and remembered[0] == tenant and remembered[1] == record:
            return remembered[2]
        try:
            job = self.services.store.get_job(job_id, tenant=tenant, record=record)
            body = dumps(JOB(job)).encode() if job is not None else None
        except Exception:
            return None
        if body is not None and record is not None:
            if len(self.bodies) >= REMEMBERED_BODIES:
                del self.bodies[next(iter(self.bodies))]  # the one remembered first
            self.bodies[job_id] = tenant, record, body
        return body

    def graph(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Evaluated first, then counted and stored in one round trip; a graph the app would
        refuse or queue goes to it untouched (it counts before any work). A caller refused
        of late (until its budget has room again) is counted before its body is read, so a
        refused flood costs its counts, not its evaluations."""
        who = self.caller(environ)
        if who is None:
            return self.app(environ, start_response)
        budgets = self.budgets(environ, who, True)
        if self.refused.get(budgets[0], 0.0) > time.time():  # counted before any work
            handover, going = self.count(who, budgets)
            if not going:
                return self.stop(environ, start_response, GRAPHS, handover)
            return self.hand_over(environ, start_response, handover)  # the route evaluates it
        config = self.config
        try:
            body = read_body(environ, config["MAX_CONTENT_LENGTH"], config["REQUEST_READ_TIMEOUT"])
        except HTTPException as error:  # the body is gone: counted here, answered there
            handover, _ = self.count(who, budgets)
            return self.hand_over(environ, start_response, replace(handover, outcome=error))
        environ["wsgi.input"] = io.BytesIO(body)  # read again by the app if it takes over
        try:
            document = load_body(body, config["MAX_JSON_DEPTH"], config["MAX_JSON_NUMBER_DIGITS"])
            envelope = plain_graph(document) or GRAPH_SCHEMA.load(document)
            parsed = parse(envelope, config["MAX_GRAPH_NODES"])
            if len(parsed.ids) > config["GRAPH_INLINE_MAX_NODES"]:
                return self.app(environ, start_response)  # to be queued
            result_json = evaluated(parsed)
        except Exception:  # invalid: the route fails the same way, and words the problem
            return self.app(environ, start_response)
        graph_id, writes = self.services.graphs.result_writes(
            result_json, config["GRAPH_TTL"], body, tenant=who[0], nodes=len(parsed.ids)
        )
        handover, counted = self.count(who, budgets, writes=writes)
        if not counted:  # refused, nothing written; or Redis failed: the route tries again
            return self.stop(environ, start_response, GRAPHS, handover)
        answer = graph_json(graph_id, "succeeded", result_json)
        headers = [("Location", f"{GRAPHS}/{graph_id}"), ("Vary", "Prefer")]
        if len(answer) >= config["GZIP_MIN_BYTES"]:
            response = Response(answer, 201, headers, mimetype=JSON)
            return self.hand_over(environ, start_response, replace(handover, outcome=response))
        return respond(
            environ, start_response, GRAPHS, "201 CREATED", answer, headers, handover.spent
        )

    def stop(
        self,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        route: str,
        handover: Handover,
    ) -> Iterable[bytes]:
        """A request counted but not going on: refused, the app's 429 made here (the problem
        of boundary.from_rate_limited, the headers of its hook), a fifth to a third cheaper
        than through Flask (docs/BENCHMARKS.md); else (Redis failed) the app answers."""
        spent = handover.spent
        if spent is None or not spent.breached:
            return self.hand_over(environ, start_response, handover)
        problem = problem_json(rate_limited(refusal(spent)), environ.get("PATH_INFO", ""))
        return respond(
            environ, start_response, route, TOO_MANY, problem.encode(), [], spent, PROBLEM_JSON
        )

    def hand_over(
        self, environ: WSGIEnvironment, start_response: StartResponse, handover: Handover
    ) -> Iterable[bytes]:
        environ[KEY] = handover
        return self.app(environ, start_response)


def respond(
    environ: WSGIEnvironment,
    start_response: StartResponse,
    route: str,
    status: str,
    body: bytes,
    headers: list[tuple[str, str]],
    spent: Spent | None,
    content_type: str = JSON,
) -> Iterable[bytes]:
    environ[ROUTE] = route
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body))), *headers]
    if spent is not None:
        headers += headers_of(spent)
    start_response(status, headers)
    return [body]


def register(app: Flask, services: Services, limiter: Limiter, auth: bool) -> None:
    """Serve the hot requests below the app (register before the metrics middleware)."""
    app.wsgi_app = HotPath(  # type: ignore[method-assign]
        app.wsgi_app, app.config, services, limiter, auth
    )
