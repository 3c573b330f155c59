"""The API under gevent (api/gunicorn_conf.py): one event loop per worker process serves
every connection, so a slow client costs a greenlet, not a process.

CPU-bound work would stop that loop, and every other connection of the process with it:
heavy requests (a body over HEAVY_BODY_BYTES) parse and evaluate in a native thread
instead (Python hands the GIL back to the loop every 5 ms), one at a time per process
(HEAVY_REQUESTS), which also bounds the memory their parsed documents take. Blocking reads
get deadlines. Outside gevent (Flask's test client) work runs inline and reads, from
memory, never block."""

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import gevent
from flask import current_app, g
from gevent import monkey
from gevent.threadpool import ThreadPool

from ..errors import Busy

T = TypeVar("T")

_threads: ThreadPool | None = None


def under_gevent() -> bool:
    """Does this process run gevent's loop (gunicorn's gevent worker patched it)?"""
    return monkey.is_module_patched("socket")


def offload(fn: Callable[..., T], *args: object) -> T:
    """fn(*args) in a native thread while the calling greenlet waits for it (a plain call
    outside gevent). fn must not touch the request, Redis or gevent: plain CPU work."""
    global _threads
    if not under_gevent():
        return fn(*args)
    if _threads is None:  # made in the worker process, after gunicorn forked it
        _threads = ThreadPool(current_app.config["HEAVY_REQUESTS"] + 1)
    return _threads.apply(fn, args)


def heavy_slots(count: int) -> threading.BoundedSemaphore:
    """The slots of one process (a gevent semaphore once the worker is patched)."""
    return threading.BoundedSemaphore(count)


def run_cpu_bound(weight: int, fn: Callable[..., T], *args: object) -> T:
    """fn(*args) for a request whose input is `weight` bytes: inline when it is light; when
    it is heavy, in a native thread, holding a heavy slot until the request ends (what fn
    builds lives that long)."""
    if weight <= current_app.config["HEAVY_BODY_BYTES"]:
        return fn(*args)
    hold_heavy_slot()
    return offload(fn, *args)


def hold_heavy_slot() -> None:
    """Take one of this process's heavy slots for the rest of the request (once)."""
    if g.get("heavy_slot"):
        return
    slots: threading.BoundedSemaphore = current_app.extensions["gradserve"].heavy
    wait = current_app.config["HEAVY_WAIT"]
    if not slots.acquire(timeout=wait):
        raise Busy(f"the server is busy with other large requests; none ended within {wait} s")
    g.heavy_slot = slots


def release_heavy_slot(error: BaseException | None = None) -> None:
    """teardown_request: give the request's slot back."""
    slots = g.pop("heavy_slot", None)
    if slots is not None:
        slots.release()


@contextmanager
def time_limit(seconds: float, error: Exception) -> Iterator[None]:
    """Raise `error` in the block if it lasts longer than `seconds` (under gevent; outside
    it there is nothing to wait for)."""
    if not under_gevent():
        yield
        return
    with gevent.Timeout(seconds, error):
        yield
