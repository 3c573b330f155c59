"""gunicorn's configuration for the API: `gunicorn -c python:service.api.gunicorn_conf` (what
`make run`, the Dockerfile and docker-compose.yml all start).

Environment: HOST (127.0.0.1; 0.0.0.0 in a container; loopback only with
GRADSERVE_AUTH=off), PORT (8000), WEB_CONCURRENCY (worker processes; default one per core,
plus one).

gevent workers: one event loop per process serves all of its connections, so clients that
send their headers or bodies slowly, and (later) long-lived event streams, cost a greenlet
each instead of a whole process (sync workers: 7 slow sockets took the API down for 38 s).
A slow client is cut off after a bounded time: the request line and headers must arrive
within `keepalive` seconds (gevent's worker reads them under that timeout), each 64 KiB
of a body within GRADSERVE_REQUEST_READ_TIMEOUT (10 s; api/body.py).

CPU-bound work (parsing a 30 MiB graph, evaluating 20,000 nodes in the request) would stop
a process's loop: it runs in a native thread instead (api/concurrency.py), so the loop keeps
answering while it computes. Processes are then for the cores, not for concurrency: one per
core uses them all, and the one more keeps a loop free while the others are busy with work
that runs on the loop (a JSON body under 64 KiB, a page of jobs). More would mostly add
memory: each serves one heavy request at a time (GRADSERVE_HEAVY_REQUESTS), which bounds
the API's memory to about `workers` of them (a 30 MiB graph takes about 350 MB).

GET /metrics adds up what every worker process counted: prometheus_client's multiprocess mode,
in the directory PROMETHEUS_MULTIPROC_DIR (`make run` gives var/metrics; unset, a private
temporary directory removed at exit). Its files are cleared when gunicorn starts, so the
counts of a stopped API never add to the next one's, and an exited worker's are folded into
one archive per kind (api/metrics_files.py), so they do not pile up while it runs.
"""

import gc
import os
import shutil
import tempfile
from pathlib import Path

from service.config import auth_enabled, load_config, metrics_access, open_binds

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", (os.cpu_count() or 1) + 1))
worker_class = "gevent"
worker_connections = 1000  # per process: slow clients and event streams included
timeout = 120  # seconds without a heartbeat from a process's loop before it is restarted
graceful_timeout = 30
keepalive = 5  # seconds: an idle kept-alive connection, and the request line and headers
# Recycle a worker now and then (the memory a 30 MiB graph left fragmented goes back to the
# system), jittered so they do not all restart at once. Not too often: a new worker loads
# the app again (0.9 s of CPU), which every 5,000 requests was 0.18 ms a request, a fifth
# of a polled job GET's.
max_requests = 20_000
max_requests_jitter = 2_000
wsgi_app = "service.api:create_app()"
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None  # "" turns it off
errorlog = "-"
proc_name = "gradserve-api"
control_socket_disable = True  # no gunicornc here; several stacks may share a machine


_private_dir: str | None = None
"""The metrics directory this master made (and removes at exit), if it made one."""


def on_starting(server: object) -> None:
    """Refuse to serve without keys (AUTH off) anywhere but on loopback, or with a bad
    METRICS setting: gunicorn prints the message and exits with status 1. Then ready the
    metrics directory, before any worker (and prometheus_client in it) starts."""
    try:
        config = load_config()
        auth = auth_enabled(config["AUTH"])
        metrics_access(config)
    except ValueError as exc:
        raise RuntimeError(str(exc)) from None
    binds = open_binds(server.cfg.bind)  # type: ignore[attr-defined]
    if binds and not auth:
        raise RuntimeError(
            f"GRADSERVE_AUTH=off serves every request without a key, so the API binds only "
            f"loopback addresses (127.0.0.1, ::1, localhost), not {', '.join(binds)}: set "
            f"HOST=127.0.0.1, or turn AUTH on and give clients keys (python -m service.keys)"
        )
    _ready_metrics_dir()


def post_worker_init(worker: object) -> None:
    """Once the app is loaded in a worker: everything made so far (Flask, the schemas, the
    engine's tables, numpy) lives as long as the process, so the cyclic collector leaves it
    out of its passes (`gc.freeze`). Otherwise each full pass walks those objects too, and
    requests that allocate a lot (a graph evaluated in the request) trigger one every few
    hundred requests: with them, the README graph's POST cost 2x its CPU."""
    gc.freeze()


def _ready_metrics_dir() -> None:
    """PROMETHEUS_MULTIPROC_DIR made and emptied of prometheus_client's files (nothing else
    in it is touched), or, unset, a private directory of this master's."""
    global _private_dir
    given = os.environ.get(MULTIPROC_DIR)
    if not given:
        _private_dir = tempfile.mkdtemp(prefix="gradserve-metrics-")
        os.environ[MULTIPROC_DIR] = _private_dir  # the workers inherit it when they fork
        return
    directory = Path(given)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink(missing_ok=True)


def child_exit(server: object, worker: object) -> None:
    """A worker process is gone: its live gauges go with it, its counts are folded into the
    archives (api/metrics_files.py), so they stay counted in files that do not pile up."""
    from prometheus_client import multiprocess

    from service.api.metrics_files import fold

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]
    fold(os.environ[MULTIPROC_DIR], worker.pid)  # type: ignore[attr-defined]


def on_exit(server: object) -> None:
    if _private_dir is not None:
        shutil.rmtree(_private_dir, ignore_errors=True)
