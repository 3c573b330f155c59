"""The API's notifier on a real redis-server that this test stops and starts again: a
change wakes the waiters of its id alone, and a lost subscription comes back and wakes
every waiter, so nothing published meanwhile is missed."""

import threading
import time
from functools import partial

import pytest

from service.api.notifier import Notifier
from service.stack import redis_server
from service.store.queue import connect, connect_subscriber

from .service_helpers import wait_until

CHANNEL = "gradserve:changes"


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server of this test's own, (re)started by calling the fixture's value."""
    port = redis_server.free_port()
    process = None

    def start():
        nonlocal process
        process = redis_server.start(port, tmp_path, durable=False)
        redis_server.wait_ready(redis_server.url(port), process)
        return process

    start()
    yield port, start, lambda: process
    process.terminate()
    process.wait(10)


def published(port, key):
    connect(redis_server.url(port)).publish(CHANNEL, key)


def test_a_change_wakes_the_waiters_of_its_id_and_no_others(own_redis):
    port, _, _ = own_redis
    notifier = Notifier(partial(connect_subscriber, redis_server.url(port)), CHANNEL)
    with notifier.watch("job:a") as a, notifier.watch("job:b") as b:
        assert notifier.connected.wait(5)
        a.clear()  # (the first subscription wakes everyone once)
        b.clear()
        published(port, "job:a")
        assert a.wait(2)
        assert not b.wait(0.2)
    assert notifier._waiters == {}  # a waiter leaves no trace


def test_wait_for_reads_again_on_each_wake_until_done(own_redis):
    port, _, _ = own_redis
    notifier = Notifier(partial(connect_subscriber, redis_server.url(port)), CHANNEL, recheck=30)
    state = {"value": 0}

    def bump():
        for _ in range(3):
            time.sleep(0.2)
            state["value"] += 1
            published(port, "graph:g")

    threading.Thread(target=bump, daemon=True).start()
    start = time.monotonic()
    assert notifier.wait_for("graph:g", lambda: state["value"], lambda v: v >= 3, 10) == 3
    assert time.monotonic() - start < 5  # woken by the messages, not the 30 s recheck
    start = time.monotonic()
    assert notifier.wait_for("graph:g", lambda: state["value"], lambda v: v >= 4, 0.5) == 3
    assert 0.4 < time.monotonic() - start < 2  # the wait's end answers the state then


def test_a_redis_restart_is_survived_and_wakes_every_waiter(own_redis):
    port, start, process = own_redis
    notifier = Notifier(partial(connect_subscriber, redis_server.url(port)), CHANNEL)
    with notifier.watch("job:a") as changed:
        assert notifier.connected.wait(5)
        process().kill()
        process().wait(10)
        wait_until(lambda: not notifier.connected.is_set(), timeout=15)
        changed.clear()
        start()
        assert notifier.connected.wait(15), "subscribed again"
        assert changed.wait(2), "every waiter is told to read again after the gap"
        changed.clear()
        published(port, "job:a")
        assert changed.wait(2), "and messages reach it again"
