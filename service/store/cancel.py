"""How a running job hears, without a round trip per step, that it was cancelled."""

import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis


class CancelListener:
    """Says whether a cancel arrived on the job's channel.

    While Redis is unreachable it says "not cancelled" and looks again a second later (a
    cancel it misses meanwhile still stops the job: its next write is refused)."""

    RETRY_AFTER = 1.0  # seconds: a broken subscription is not retried at every step

    def __init__(self, pubsub: redis.client.PubSub) -> None:
        self._pubsub = pubsub
        self._cancelled = False
        self._quiet_until = 0.0

    def cancelled(self) -> bool:
        if self._cancelled or time.monotonic() < self._quiet_until:
            return self._cancelled
        try:
            while not self._cancelled:
                message = self._pubsub.get_message(ignore_subscribe_messages=True, timeout=0.0)
                if message is None:
                    break
                self._cancelled = message["type"] == "message"
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            self._quiet_until = time.monotonic() + self.RETRY_AFTER
        return self._cancelled


@contextmanager
def listen(connection: redis.Redis, channel: str) -> Iterator[CancelListener]:
    """Subscribed to `channel` for the block (subscribe before checking the status)."""
    pubsub = connection.pubsub()
    try:
        pubsub.subscribe(channel)
        yield CancelListener(pubsub)
    finally:
        pubsub.close()
