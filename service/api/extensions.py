"""What the app holds for its requests: the Redis client, the store and the queue."""

from dataclasses import dataclass

import redis
from flask import current_app
from rq import Queue

from .graph_store import GraphStore
from .store import Store


@dataclass(frozen=True)
class Services:
    store: Store
    graphs: GraphStore
    queue: Queue
    readiness: redis.Redis  # the same Redis, with a short timeout: /readyz never hangs


def services() -> Services:
    return current_app.extensions["gradserve"]
