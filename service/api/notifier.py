"""Requests that wait for a job or graph to change (event streams, `Prefer: wait`) without
polling Redis and without holding a Redis connection while they wait.

The store's scripts PUBLISH `job:<id>` (or `graph:<id>`) on one channel whenever a job or
graph changes. Each API process runs ONE subscriber (a greenlet under gunicorn's gevent
worker, a thread elsewhere) on a connection of its own, which wakes the local waiters of
that id. A message only says "read it again": a waiter always re-reads the store after a
wake, and also every RECHECK seconds without one, so a message lost while the subscriber
reconnects (a Redis restart) delays a waiter by a few seconds at most, never loses it; on
reconnecting the subscriber wakes every waiter too."""

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import redis

log = logging.getLogger(__name__)
T = TypeVar("T")

LISTEN_TIMEOUT = 1.0
"""Seconds one read of the subscription waits before looking again (and pinging Redis
now and then: the connection's health check)."""

MAX_BACKOFF = 5.0
"""Seconds at most between two tries to subscribe again while Redis is unreachable."""


class Notifier:
    """Waiters per changed id, woken by one subscriber per process."""

    def __init__(
        self, connect: Callable[[], redis.Redis], channel: str, recheck: float = 5.0
    ) -> None:
        self._connect = connect
        self.channel = channel
        self.recheck = recheck
        """Seconds a waiter waits without a message before it reads the store again."""
        self._waiters: dict[str, set[threading.Event]] = {}
        self._lock = threading.Lock()
        self._client: redis.Redis | None = None
        self._subscriber: threading.Thread | None = None
        self._pid = 0
        self.connected = threading.Event()
        """Set while the subscription is up (tests and health look at it)."""
        self.held = 0
        """Requests of this process holding a connection open (streams, waits)."""

    # -- waiting ---------------------------------------------------------------------------

    @contextmanager
    def watch(self, key: str) -> Iterator[threading.Event]:
        """An event set whenever `key` (`job:<id>`, `graph:<id>`) may have changed. Watch
        before reading the state, then wait and clear, then read again: a change between
        the read and the wait is never missed."""
        self._start()
        event = threading.Event()
        with self._lock:
            self._waiters.setdefault(key, set()).add(event)
        try:
            yield event
        finally:
            with self._lock:
                waiters = self._waiters.get(key)
                if waiters is not None:
                    waiters.discard(event)
                    if not waiters:
                        del self._waiters[key]

    def wait_for(
        self, key: str, read: Callable[[], T], done: Callable[[T], bool], seconds: float
    ) -> T:
        """read() until done(value) or `seconds` have passed (or read() gives None: gone);
        the last value read. Reads again on every wake, and every `recheck` seconds."""
        deadline = time.monotonic() + seconds
        with self.watch(key) as changed:
            while True:
                value = read()
                left = deadline - time.monotonic()
                if value is None or done(value) or left <= 0:
                    return value
                changed.wait(min(left, self.recheck))
                changed.clear()

    def acquire(self, limit: int) -> bool:
        """Take one of `limit` places for a long-held request (give it back with release)."""
        if self.held >= limit:
            return False
        self.held += 1
        return True

    def release(self) -> None:
        self.held -= 1

    # -- the subscriber --------------------------------------------------------------------

    def _start(self) -> None:
        """Start this process's subscriber on first use (after gunicorn forked the worker,
        so it runs on that process's loop)."""
        if self._subscriber is not None and self._pid == os.getpid():
            return
        with self._lock:
            if self._subscriber is None or self._pid != os.getpid():
                self._pid = os.getpid()
                self._subscriber = threading.Thread(
                    target=self._listen, name="gradserve-notifier", daemon=True
                )
                self._subscriber.start()

    def _wake(self, key: str) -> None:
        with self._lock:
            waiters = list(self._waiters.get(key, ()))
        for event in waiters:
            event.set()

    def _wake_all(self) -> None:
        with self._lock:
            waiters = [event for events in self._waiters.values() for event in events]
        for event in waiters:
            event.set()

    def _listen(self) -> None:
        backoff = 0.1
        while True:
            pubsub = None
            try:
                self._client = self._client or self._connect()
                pubsub = self._client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self.channel)
                self.connected.set()
                self._wake_all()  # whatever changed while it was down: read it again
                backoff = 0.1
                while True:
                    message = pubsub.get_message(timeout=LISTEN_TIMEOUT)
                    if message is not None and message["type"] == "message":
                        self._wake(message["data"].decode())
            except (redis.RedisError, OSError) as error:
                if self.connected.is_set():
                    log.warning("notifier: subscription lost (%s); subscribing again", error)
                self.connected.clear()
                self._wake_all()
            finally:
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except (redis.RedisError, OSError):
                        pass
            time.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)
