"""What GET /metrics's request counting costs a small GET, with and without it in one run
(GRADSERVE_METRICS=off adds no middleware), in multiprocess mode as deployed:

- the middleware alone, around an app that only answers, CPU microseconds per request;
- in-process: GET /healthz and GET /v1/jobs/<id> (tenant `local`, a stored job) straight
  through the WSGI app, CPU microseconds per request (CPU time, not wall time: other
  processes on a busy machine do not count), the best of rounds alternating between the
  apps, with a second app without it to show the noise;
- over HTTP: GET /v1/jobs/<id> against gunicorn (one gevent process) on one kept-alive
  connection, requests per second, the median of rounds alternating between the two APIs
  (wall time: noisy on a shared machine);
- a scrape of /metrics after that traffic: its size and time.
"""

import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import requests
from werkzeug.routing import Rule
from werkzeug.test import EnvironBuilder

from bench.servers import wait_ready
from service.stack import redis_server

SPEC = {"model": {"inputs": 2, "layers": [4, 1]}, "dataset": {"name": "moons"}, "steps": 5}
IN_PROCESS_REQUESTS = 1000
IN_PROCESS_ROUNDS = 15
HOOK_CALLS = 20_000
HTTP_SECONDS = 2.0
ROUNDS = 3
SETTINGS = {"AUTH": False, "RATE_LIMIT": "", "RATE_LIMIT_SUBMIT": ""}


@contextlib.contextmanager
def redis() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as data_dir:
        port = redis_server.free_port()
        process = redis_server.start(port, Path(data_dir), durable=False)
        url = redis_server.url(port)
        redis_server.wait_ready(url, process)
        try:
            yield url
        finally:
            process.terminate()
            process.wait(10)


@contextlib.contextmanager
def gunicorn(redis_url: str, metrics: str) -> Iterator[str]:
    """The API under gunicorn's config, one process, GRADSERVE_METRICS=`metrics`."""
    port = redis_server.free_port()
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
        "GUNICORN_ACCESS_LOG": "",
        "GRADSERVE_AUTH": "off",
        "GRADSERVE_RATE_LIMIT": "",
        "GRADSERVE_RATE_LIMIT_SUBMIT": "",
        "GRADSERVE_METRICS": metrics,
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # each makes its own
    command = [sys.executable, "-m", "gunicorn", "-c", "python:service.api.gunicorn_conf"]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base)
        yield base
    finally:
        server.terminate()
        server.wait(60)


def wsgi_get(app: Any, path: str) -> Callable[[], None]:
    """IN_PROCESS_REQUESTS GETs of `path` through `app`'s WSGI callable."""
    environ = EnvironBuilder(path=path, environ_base={"REMOTE_ADDR": "127.0.0.1"}).get_environ()

    def start_response(status: str, headers: list, exc_info: object = None) -> None:
        assert status.startswith("200"), status

    def run() -> None:
        for _ in range(IN_PROCESS_REQUESTS):
            b"".join(app.wsgi_app(dict(environ), start_response))

    return run


def cpu_seconds(run: Callable[[], None]) -> float:
    started = time.process_time()
    run()
    return time.process_time() - started


def in_process(apps: dict[str, Any], path: str) -> dict[str, float]:
    """CPU seconds per GET `path` of each app, the best of IN_PROCESS_ROUNDS alternating
    rounds."""
    runs = {name: wsgi_get(app, path) for name, app in apps.items()}
    for run in runs.values():
        run()  # warm: connections, caches, the metrics files
    best, order = dict.fromkeys(runs, float("inf")), list(runs)
    for _ in range(IN_PROCESS_ROUNDS):
        for name in order:
            best[name] = min(best[name], cpu_seconds(runs[name]) / IN_PROCESS_REQUESTS)
        order.reverse()  # neither app always goes first
    return best


def middleware_alone(app: Any) -> float:
    """CPU seconds the metrics middleware adds to one request: it wraps a WSGI app that only
    answers (as Flask would for /healthz), against that app called bare."""
    middleware = app.wsgi_app
    request = SimpleNamespace(url_rule=Rule("/healthz"))

    def answer(environ: dict, start_response: Callable) -> list[bytes]:
        environ["werkzeug.request"] = request
        start_response("200 OK", [])
        return [b""]

    def start_response(status: str, headers: list, exc_info: object = None) -> None:
        pass

    environ = EnvironBuilder(path="/healthz").get_environ()
    bare, wrapped = answer, type(middleware)(answer, None)
    wrapped.requests, wrapped.latency = middleware.requests, middleware.latency
    best = {}
    for name, call in (("bare", bare), ("wrapped", wrapped), ("bare", bare), ("wrapped", wrapped)):
        started = time.process_time()
        for _ in range(HOOK_CALLS):
            call(dict(environ), start_response)
        elapsed = (time.process_time() - started) / HOOK_CALLS
        best[name] = min(best.get(name, elapsed), elapsed)
    return best["wrapped"] - best["bare"]


def per_second(base: str, path: str) -> float:
    with requests.Session() as http:
        http.get(base + path).raise_for_status()
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < HTTP_SECONDS:
            assert http.get(base + path).status_code == 200
            count += 1
        return count / (time.perf_counter() - started)


def main() -> None:
    with tempfile.TemporaryDirectory() as metrics_dir, redis() as url:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir  # before prometheus_client loads
        from service.api import create_app

        # Two apps without the middleware: how far apart two identical apps measure is the noise.
        apps = {
            name: create_app({**SETTINGS, "REDIS_URL": url, "METRICS": name.rstrip("2")})
            for name in ("off", "loopback", "off2")
        }
        job_id = apps["off"].test_client().post("/v1/jobs", json=SPEC).get_json()["id"]
        path = f"/v1/jobs/{job_id}"
        alone = middleware_alone(apps["loopback"])
        print(f"the middleware alone: {alone * 1e6:.1f} µs CPU per request", flush=True)
        for shown, target in (("/healthz", "/healthz"), ("/v1/jobs/<id>", path)):
            cpu = in_process(apps, target)
            on, off, again = cpu["loopback"], cpu["off"], cpu["off2"]
            print(
                f"in-process GET {shown}: {on * 1e6:.0f} µs CPU with it, {off * 1e6:.0f}"
                f" without ({(on - off) * 1e6:+.1f} µs, {on / off:.3f}x; a second app without"
                f" it: {(again - off) * 1e6:+.1f} µs)",
                flush=True,
            )
        with gunicorn(url, "loopback") as counted, gunicorn(url, "off") as without:
            rates: dict[str, list[float]] = {"with": [], "without": []}
            for _ in range(ROUNDS):
                rates["with"].append(per_second(counted, path))
                rates["without"].append(per_second(without, path))
            on_rate, off_rate = (statistics.median(rates[k]) for k in ("with", "without"))
            print(
                f"over HTTP GET /v1/jobs/<id>, one gunicorn process, {ROUNDS} alternating rounds"
                f" of {HTTP_SECONDS:.0f} s: {on_rate:.0f} req/s with it, {off_rate:.0f} "
                f"without (median; {on_rate / off_rate:.3f}x; load average "
                f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)",
                flush=True,
            )
            started = time.perf_counter()
            text = requests.get(f"{counted}/metrics", timeout=10).text
            print(
                f"a scrape of /metrics: {len(text)} bytes in "
                f"{(time.perf_counter() - started) * 1e3:.1f} ms",
                flush=True,
            )


if __name__ == "__main__":
    main()
