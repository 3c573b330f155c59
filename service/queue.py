"""The rq queue: JSON-serialized (nothing in Redis is ever unpickled), job functions named
by their import paths so the API never imports the engine's training code to enqueue."""

from collections.abc import Callable, Mapping
from typing import Any

import redis
from redis.client import Pipeline
from rq import Queue
from rq.serializers import JSONSerializer

TRAIN = "service.tasks.run_training"
EVALUATE_GRAPH = "service.tasks.evaluate_graph"
Enqueue = Callable[[Pipeline, str], None]
"""enqueue(pipeline, id): add the rq job for a resource to the caller's transaction."""

RESULT_TTL = 600
"""Seconds rq keeps a finished rq job (the outcome lives in gradserve's own records)."""


def connect(url: str, timeout: float | None = None) -> redis.Redis:
    """A Redis client as rq needs it (bytes, not str); `timeout` bounds each command."""
    return redis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=30
    )


def make_queue(connection: redis.Redis, config: Mapping[str, Any]) -> Queue:
    return Queue(
        config["QUEUE_NAME"],
        connection=connection,
        serializer=JSONSerializer,
        default_timeout=config["JOB_TIMEOUT"],
    )


def enqueuer(queue: Queue, function: str, prefix: str) -> Enqueue:
    """enqueue(pipe, id): queue `function(id)` as rq job `<prefix>-<id>` inside the
    caller's transaction."""

    def enqueue(pipe: Pipeline, resource_id: str) -> None:
        queue.enqueue(
            function,
            resource_id,
            job_id=f"{prefix}-{resource_id}",
            pipeline=pipe,
            result_ttl=RESULT_TTL,
            description=f"{prefix} {resource_id}",
        )

    return enqueue


def training_enqueuer(queue: Queue) -> Enqueue:
    return enqueuer(queue, TRAIN, "train")


def graph_enqueuer(queue: Queue) -> Enqueue:
    return enqueuer(queue, EVALUATE_GRAPH, "graph")
