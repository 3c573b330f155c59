"""The rq queue: JSON-serialized (nothing in Redis is ever unpickled), job functions named
by their import paths (the job functions of service.worker.jobs, and no others) so the API
never imports the worker's code to enqueue."""

from collections.abc import Callable, Mapping
from typing import Any

import redis
from redis.backoff import ConstantBackoff, NoBackoff
from redis.client import Pipeline
from redis.retry import Retry
from rq import Queue
from rq.serializers import JSONSerializer

from .. import settings
from .parser import NonYieldingParser

POOL_WAIT = 20.0
"""Seconds a command without a timeout waits for a free connection (redis-py's default)."""
TRAIN = "service.worker.jobs.run_training"
EVALUATE_GRAPH = "service.worker.jobs.evaluate_graph"
Enqueue = Callable[..., str | None]
"""enqueue(pipeline, id, requeues=0): add the rq job for a resource to the caller's
transaction; the rq job's id (its ticket). A job handed back to the queue gets a new one."""

RESULT_TTL = 600
"""Seconds rq keeps a finished rq job (the outcome lives in gradserve's own records)."""

RIDE_THROUGH_STEP = 0.25
"""Seconds between two tries of a command while Redis is unreachable (see `connect`)."""


def connect(
    url: str,
    timeout: float | None = None,
    ride_through: float = 0.0,
    max_connections: int = settings.REDIS_MAX_CONNECTIONS,
) -> redis.Redis:
    """A Redis client as rq needs it (bytes, not str); `timeout` bounds each command, and
    the wait for one of its `max_connections` when all are in use (20 s without one).

    A failed connection is retried once at once (a pooled connection goes stale when Redis
    restarts), a timeout never: callers that must answer quickly stay quick. With
    `ride_through` seconds, a command keeps being retried that long while Redis is
    unreachable (a worker's main loop, which has nothing better to do)."""
    if ride_through > 0:
        retry = Retry(ConstantBackoff(RIDE_THROUGH_STEP), int(ride_through / RIDE_THROUGH_STEP))
    else:
        retry = Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,))
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout or POOL_WAIT,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
        retry=retry,
        parser_class=NonYieldingParser,
    )
    return redis.Redis(connection_pool=pool)


def connect_subscriber(url: str) -> redis.Redis:
    """A client for a long-lived subscription: its reads wait as long as they must (no
    socket timeout), it connects within 2 s, and it pings Redis every 10 s while it waits,
    so a connection lost without a word is found out."""
    return redis.Redis.from_url(
        url, socket_connect_timeout=2.0, health_check_interval=10, parser_class=NonYieldingParser
    )


def make_queue(connection: redis.Redis, config: Mapping[str, Any]) -> Queue:
    return Queue(
        config["QUEUE_NAME"],
        connection=connection,
        serializer=JSONSerializer,
        default_timeout=config["JOB_TIMEOUT"],
    )


class Enqueuer:
    """enqueue(pipe, id, requeues=0): queue `function(id)` as rq job `<prefix>-<id>` (or
    `<prefix>-<id>-<requeues>`) inside the caller's transaction; that rq job id.

    A new id per hand-back: rq's own clean-up of the previous rq job (failed when its worker
    died) can never touch the new one."""

    def __init__(self, queue: Queue, function: str, prefix: str) -> None:
        self.queue, self.function, self.prefix = queue, function, prefix

    def ticket(self, resource_id: str, requeues: int = 0) -> str:
        return f"{self.prefix}-{resource_id}" + (f"-{requeues}" if requeues else "")

    def __call__(self, pipe: Pipeline, resource_id: str, requeues: int = 0) -> str:
        ticket = self.ticket(resource_id, requeues)
        self.queue.enqueue(
            self.function,
            resource_id,
            job_id=ticket,
            pipeline=pipe,
            result_ttl=RESULT_TTL,
            description=f"{self.prefix} {resource_id}",
        )
        return ticket


def training_enqueuer(queue: Queue) -> Enqueuer:
    return Enqueuer(queue, TRAIN, "train")


def graph_enqueuer(queue: Queue) -> Enqueuer:
    return Enqueuer(queue, EVALUATE_GRAPH, "graph")
