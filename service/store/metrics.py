"""What GET /metrics reads from Redis, in one round trip: the queue's depth, jobs by status,
live workers and webhook deliveries; and `count_webhook_delivery`, which the webhook sender
calls once per delivery attempt (the sender runs in the workers, on any machine, so the
count lives in Redis rather than in the API's processes)."""

from dataclasses import dataclass

import redis
from rq import Queue
from rq.worker_registration import WORKERS_BY_QUEUE_KEY

from .keys import Keys
from .scripts import STATUSES

WEBHOOK_OUTCOMES = ("delivered", "retrying", "failed", "refused")
"""What became of one delivery attempt: answered 2xx; failed with another attempt to come;
failed with none left; refused before sending (its URL is not allowed)."""

LIVE_WORKERS = """
local live = 0
for _, key in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  live = live + redis.call('EXISTS', key)
end
return live
"""
"""The workers of a queue whose own key still exists: rq leaves a killed worker in the
queue's set until someone cleans it, but its key lapses without heartbeats."""


@dataclass(frozen=True)
class Gauges:
    queue_depth: int  # rq jobs waiting in the queue
    jobs: dict[str, int]  # jobs kept in the store, by status, all tenants together
    workers: int  # live rq workers on the queue
    webhook_deliveries: dict[str, int]  # delivery attempts ever counted, by outcome


def read_gauges(connection: redis.Redis, queue: Queue, prefix: str = "gradserve") -> Gauges:
    """The gauges, read in one pipeline (no transaction: each is a moment's count)."""
    keys = Keys(prefix)
    with connection.pipeline(transaction=False) as pipe:
        pipe.llen(queue.key)
        for status in STATUSES:
            pipe.zcard(keys.jobs(status))
        pipe.eval(LIVE_WORKERS, 1, WORKERS_BY_QUEUE_KEY % queue.name)
        pipe.hgetall(keys.webhook_outcomes())
        depth, *counts, workers, deliveries = pipe.execute()
    return Gauges(
        queue_depth=depth,
        jobs=dict(zip(STATUSES, counts, strict=True)),
        workers=workers,
        webhook_deliveries={
            outcome: int(deliveries.get(outcome.encode(), 0)) for outcome in WEBHOOK_OUTCOMES
        },
    )


def count_webhook_delivery(
    client: redis.Redis | redis.client.Pipeline, outcome: str, prefix: str = "gradserve"
) -> None:
    """Count one delivery attempt's outcome (one of WEBHOOK_OUTCOMES): the webhook sender
    calls this, on a client or inside the pipeline that records the attempt."""
    if outcome not in WEBHOOK_OUTCOMES:
        raise ValueError(
            f"a webhook delivery's outcome is one of {WEBHOOK_OUTCOMES}, not {outcome!r}"
        )
    client.hincrby(Keys(prefix).webhook_outcomes(), outcome, 1)
