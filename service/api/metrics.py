"""GET /metrics: Prometheus metrics of the API's requests (counted in every gunicorn worker
process, merged by prometheus_client's multiprocess mode) and of the store (read from Redis
at each scrape), with one WSGI middleware around the app.

Labels are bounded: a request's route is its URL rule (`/v1/jobs/<job_id>`, never the path;
`unmatched` when none matched), its method one of HTTP's (else `other`), its status the
answer's code. No tenant, key or job id is ever a label.

Multiprocess mode is on when PROMETHEUS_MULTIPROC_DIR is set (gunicorn_conf sets it before
the workers fork); without it (an app made in a test, `flask run`) the counts are this
process's own."""

import os
from collections.abc import Callable, Iterable
from time import perf_counter
from typing import Any

import redis
from flask import Flask, Response, request
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from ..config import metrics_access
from ..store.metrics import read_gauges
from .extensions import Services
from .metrics_files import LockedCollector
from .metrics_guard import ENDPOINT, document
from .metrics_guard import refusal as refusal_of

__all__ = ["document", "register"]

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"
ROUTE = "gradserve.route"
"""The environ key where a request answered below Flask (api/hotpath.py) names its URL rule."""
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
"""Seconds: a cached job GET takes about a millisecond, a 30 MiB graph tens of seconds."""
WSGIEnvironment = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApplication = Callable[[WSGIEnvironment, StartResponse], Iterable[bytes]]


class RequestMetrics:
    """WSGI middleware around the Flask app that counts and times every request. Not a pair
    of Flask hooks: Flask's dispatch of each hook costs about what the counting does."""

    def __init__(self, app: WSGIApplication, registry: CollectorRegistry | None) -> None:
        self.app = app
        self.requests = Counter(
            "gradserve_http_requests",
            "HTTP requests answered, by route (URL rule), method and status.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "gradserve_http_request_duration_seconds",
            "Seconds from a request reaching the app to its response (its headers, for a stream).",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        # labels() validates and locks on each call: its children are kept here instead.
        self._counted: dict[tuple[str, str, str], Any] = {}
        self._timed: dict[tuple[str, str], Any] = {}

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started = perf_counter()
        answer: list[Any] = []

        def respond(status: str, headers: Any, exc_info: Any = None) -> Any:
            # Called while Flask's request is still current: its URL rule is read here (Flask
            # takes the request out of the environ once it has returned). The hot path, which
            # answers below Flask, names its route itself.
            route = environ.get(ROUTE)
            if route is None:
                rule = getattr(environ.get("werkzeug.request"), "url_rule", None)
                route = rule.rule if rule is not None else UNMATCHED
            answer[:] = status[:3], route
            return start_response(status, headers, exc_info)

        body = self.app(environ, respond)  # Flask answers (start_response) before it returns
        if answer:
            self._observe(environ, *answer, perf_counter() - started)
        return body

    def _observe(self, environ: WSGIEnvironment, status: str, route: str, seconds: float) -> None:
        method = environ.get("REQUEST_METHOD", "")
        method = method if method in METHODS else "other"
        key = (route, method, status)
        counter = self._counted.get(key)
        if counter is None:
            counter = self._counted[key] = self.requests.labels(*key)
        counter.inc()
        timer = self._timed.get(key[:2])
        if timer is None:
            timer = self._timed[key[:2]] = self.latency.labels(route, method)
        timer.observe(seconds)


class StoreCollector:
    """The store's gauges, read from Redis when scraped: one pipeline on the readiness
    connection (READINESS_TIMEOUT), so a hung Redis delays a scrape by at most that and the
    answer still comes, with gradserve_redis_up 0."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def collect(self) -> list[Metric]:
        up = GaugeMetricFamily("gradserve_redis_up", "1 if Redis answered this scrape, else 0.")
        try:
            gauges = read_gauges(self.services.readiness, self.services.queue)
        except (redis.RedisError, OSError):
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        depth = GaugeMetricFamily(
            "gradserve_queue_depth", "rq jobs waiting in the queue.", labels=["queue"]
        )
        depth.add_metric([self.services.queue.name], gauges.queue_depth)
        jobs = GaugeMetricFamily(
            "gradserve_jobs", "Training jobs kept in the store, by status.", labels=["status"]
        )
        for status, count in gauges.jobs.items():
            jobs.add_metric([status], count)
        workers = GaugeMetricFamily(
            "gradserve_workers", "Live rq workers on the queue.", value=gauges.workers
        )
        deliveries = CounterMetricFamily(
            "gradserve_webhook_deliveries",
            "Webhook delivery attempts, by outcome.",
            labels=["outcome"],
        )
        for outcome, count in gauges.webhook_deliveries.items():
            deliveries.add_metric([outcome], count)
        return [up, depth, jobs, workers, deliveries]


def register(app: Flask, services: Services) -> None:
    """Count and time every request, and serve GET /metrics (METRICS=off: neither, so the
    request path pays nothing)."""
    mode, token = metrics_access(app.config)
    if mode == "off":
        return
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        LockedCollector(registry)
        counted = None  # written to the directory, merged when read
    else:
        counted = registry
    app.wsgi_app = RequestMetrics(app.wsgi_app, counted)  # type: ignore[method-assign]
    registry.register(StoreCollector(services))

    def serve() -> Response:
        refusal = refusal_of(mode, token)
        if refusal is not None:
            return refusal
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        response = Response(encode(registry), content_type=content_type)
        response.headers["Cache-Control"] = "no-store"
        return response

    app.add_url_rule("/metrics", ENDPOINT, serve, methods=["GET"])
