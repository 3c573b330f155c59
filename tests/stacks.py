"""A stack of the tests' own, as `make run` starts one (service.stack.Stack: gunicorn and
rq workers, supervised), on a database of the session's redis-server."""

import contextlib
import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

import requests

from service.stack import Stack, redis_server
from service.store.queue import connect

from .service_helpers import wait_until


@contextlib.contextmanager
def own_stack(
    redis_port: int,
    db: int,
    directory: Path,
    settings: Mapping[str, str | None] = {},  # noqa: B006 - read, never changed
    *,
    workers: int = 0,
    processes: int = 2,
) -> Iterator[str]:
    """Database `db` emptied, then the API (`processes` gunicorn workers) and `workers` rq
    workers on it, its log and key in `directory`, with `settings` over this environment
    (None removes a variable); its base URL once it answers /readyz."""
    url = redis_server.url(redis_port, db)
    connect(url).flushdb()
    port = redis_server.free_port()
    env = {
        **os.environ,
        "REDIS_URL": url,
        "PORT": str(port),
        "WEB_CONCURRENCY": str(processes),
        "GUNICORN_ACCESS_LOG": "",
        **settings,
    }
    env = {name: value for name, value in env.items() if value is not None}
    with open(directory / "stack.log", "w") as log:
        running = Stack(workers=workers, data_dir=directory, env=env, output=log)
        running.start()
        supervisor = threading.Thread(target=running.supervise, daemon=True)
        supervisor.start()
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until(lambda: ready(base), timeout=30)
            yield base
        finally:
            running.stopping = True
            supervisor.join()
            running.stop()


def ready(base: str) -> bool:
    try:
        return requests.get(f"{base}/readyz", timeout=1).status_code == 200
    except requests.RequestException:  # not listening yet, or too busy starting to answer
        return False
