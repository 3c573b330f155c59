"""What GET /metrics's request hooks cost a small GET, with and without them in one run
(GRADSERVE_METRICS=off registers no hooks), in multiprocess mode as deployed:

- the hook pair alone (before, then after with a response), CPU microseconds per request;
- in-process: GET /healthz and GET /v1/jobs/<id> (tenant `local`, a stored job) straight
  through the WSGI app, CPU microseconds per request (CPU time, not wall time: other
  processes on a busy machine do not count), the best of rounds alternating between the two
  apps;
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
from typing import Any

import requests
from werkzeug.test import EnvironBuilder

from service.retry import retry
from service.stack import redis_server

SPEC = {"model": {"inputs": 2, "layers": [4, 1]}, "dataset": {"name": "moons"}, "steps": 5}
IN_PROCESS_REQUESTS = 1000
IN_PROCESS_ROUNDS = 9
HOOK_CALLS = 20_000
HTTP_SECONDS = 2.0
ROUNDS = 3
SETTINGS = {"AUTH": False, "RATE_LIMIT": "", "RATE_LIMIT_SUBMIT": ""}
METRICS = ("loopback", "off")


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
        retry(
            lambda: requests.get(f"{base}/readyz", timeout=5).raise_for_status(),
            (requests.RequestException,),
            60,
            pause=0.1,
        )
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


def hook_pair(app: Any) -> float:
    """CPU seconds of one before/after pair of the metrics hooks, on a /healthz request."""
    before, after = app.before_request_funcs[None][0], app.after_request_funcs[None][0]
    response = app.response_class("{}", status=200)
    with app.test_request_context("/healthz"):
        started = time.process_time()
        for _ in range(HOOK_CALLS):
            before()
            after(response)
        return (time.process_time() - started) / HOOK_CALLS


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

        apps = {m: create_app({**SETTINGS, "REDIS_URL": url, "METRICS": m}) for m in METRICS}
        job_id = apps["off"].test_client().post("/v1/jobs", json=SPEC).get_json()["id"]
        path = f"/v1/jobs/{job_id}"
        print(f"the hook pair alone: {hook_pair(apps['loopback']) * 1e6:.1f} µs CPU", flush=True)
        for shown, target in (("/healthz", "/healthz"), ("/v1/jobs/<id>", path)):
            cpu = in_process(apps, target)
            on, off = cpu["loopback"], cpu["off"]
            print(
                f"in-process GET {shown}: {on * 1e6:.0f} µs CPU with the hooks, {off * 1e6:.0f}"
                f" without ({(on - off) * 1e6:+.1f} µs, {on / off:.3f}x)",
                flush=True,
            )
        with gunicorn(url, "loopback") as with_hooks, gunicorn(url, "off") as without:
            rates: dict[str, list[float]] = {"with": [], "without": []}
            for _ in range(ROUNDS):
                rates["with"].append(per_second(with_hooks, path))
                rates["without"].append(per_second(without, path))
            on_rate, off_rate = (statistics.median(rates[k]) for k in ("with", "without"))
            print(
                f"over HTTP GET /v1/jobs/<id>, one gunicorn process, {ROUNDS} alternating rounds"
                f" of {HTTP_SECONDS:.0f} s: {on_rate:.0f} req/s with the hooks, {off_rate:.0f} "
                f"without (median; {on_rate / off_rate:.3f}x; load average "
                f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)",
                flush=True,
            )
            started = time.perf_counter()
            text = requests.get(f"{with_hooks}/metrics", timeout=10).text
            print(
                f"a scrape of /metrics: {len(text)} bytes in "
                f"{(time.perf_counter() - started) * 1e3:.1f} ms",
                flush=True,
            )


if __name__ == "__main__":
    main()
