"""What the HTTP benches start: a Redis of their own, and the API (or a bare Flask app) under
gunicorn with the project's config (service/api/gunicorn_conf.py), on loopback, stopped on
the way out."""

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import requests

from service.retry import retry
from service.stack import Stack, redis_server

GUNICORN = [sys.executable, "-m", "gunicorn", "-c", "python:service.api.gunicorn_conf"]

UNLIMITED = {"GRADSERVE_RATE_LIMIT": "", "GRADSERVE_RATE_LIMIT_SUBMIT": ""}
"""No budgets: what the benches of the service measure (polling every 2 ms, posting back to
back), not the keys or rate limits."""

AUTH_OFF = {"GRADSERVE_AUTH": "off", **UNLIMITED}
"""On loopback, as tenant `local`, with no budgets."""


def environment(redis_url: str, port: int, settings: Mapping[str, str]) -> dict[str, str]:
    """This process's environment for the API: its Redis and port, no access log (unless
    `settings` names one), then `settings`."""
    return {
        **os.environ,
        "REDIS_URL": redis_url,
        "PORT": str(port),
        "GUNICORN_ACCESS_LOG": "",
        **settings,
    }


@contextlib.contextmanager
def redis(durable: bool = True) -> Iterator[tuple[str, Path]]:
    """A redis-server of its own (append-only file with `durable`, as make run's): (its URL,
    a scratch directory that goes with it)."""
    with tempfile.TemporaryDirectory() as data_dir:
        port = redis_server.free_port()
        server = redis_server.start(port, Path(data_dir) / "redis", durable=durable)
        try:
            redis_server.wait_ready(redis_server.url(port), server)
            yield redis_server.url(port), Path(data_dir)
        finally:
            server.terminate()
            server.wait(10)


def wait_ready(base: str, path: str = "/readyz", timeout: float = 60) -> None:
    retry(
        lambda: requests.get(f"{base}{path}", timeout=5).raise_for_status(),
        (requests.RequestException,),
        timeout,
        pause=0.1,
    )


@contextlib.contextmanager
def gunicorn(
    redis_url: str,
    scratch: Path,
    settings: Mapping[str, str],
    args: list[str] | None = None,
    ready: str = "/readyz",
) -> Iterator[tuple[str, int]]:
    """gunicorn with the API's config, `args` added (another worker class, another app), its
    environment `settings` over environment()'s: (base URL, gunicorn's pid)."""
    port = redis_server.free_port()
    env = environment(redis_url, port, settings)
    with open(scratch / f"gunicorn-{port}.log", "w") as log:
        server = subprocess.Popen([*GUNICORN, *(args or [])], env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, ready)
        yield base, server.pid
    finally:
        server.terminate()
        server.wait(60)


@contextlib.contextmanager
def api(
    worker_args: list[str] | None = None,
    durable: bool = True,
    settings: Mapping[str, str] = AUTH_OFF,
) -> Iterator[tuple[str, int]]:
    """A Redis and the API under gunicorn (no rq workers): (base URL, gunicorn's pid)."""
    with redis(durable) as (url, scratch), gunicorn(url, scratch, settings, worker_args) as found:
        yield found


@contextlib.contextmanager
def stack(
    redis_url: str, data_dir: Path, settings: Mapping[str, str] = AUTH_OFF, workers: int = 1
) -> Iterator[str]:
    """A stack like `make run`'s on the Redis at `redis_url`: gunicorn and `workers` rq
    workers, AUTH off and no budgets unless `settings` say otherwise, its log in
    data_dir/stack.log; its base URL once it is ready."""
    port = redis_server.free_port()
    env = environment(redis_url, port, settings)
    with open(Path(data_dir) / "stack.log", "w") as log:
        running = Stack(workers=workers, data_dir=Path(data_dir), env=env, output=log)
        running.start()
        try:
            base = f"http://127.0.0.1:{port}"
            wait_ready(base, timeout=120)
            yield base
        finally:
            running.stop()
