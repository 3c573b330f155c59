"""What the app holds for its requests: the Redis client, the stores and the queue."""

import threading
from dataclasses import dataclass

import redis
from flask import current_app

from ..store import ApiKeys, GraphStore, JobStore, WebhookSecrets
from ..store.queue import Queue
from .notifier import Notifier


@dataclass(frozen=True)
class Services:
    store: JobStore
    graphs: GraphStore
    queue: Queue
    keys: ApiKeys
    webhooks: WebhookSecrets
    readiness: redis.Redis  # the same Redis, with a short timeout: /readyz never hangs
    heavy: threading.BoundedSemaphore  # this process's heavy-request slots (api/concurrency.py)
    notifier: Notifier  # wakes the requests that wait for a job or graph (api/notifier.py)


def services() -> Services:
    return current_app.extensions["gradserve"]
