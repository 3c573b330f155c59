"""`python -m service.run` (`make run`): the whole stack on one machine, supervised.

Redis (the bundled redis-server, its append-only file under ./var/, unless REDIS_URL
points elsewhere), the API under gunicorn on 127.0.0.1:$PORT, and $WORKERS rq workers
(one per core by default); a worker that dies is replaced. Ctrl-C or SIGTERM stops the
API, then the workers (each finishes or is stopped within a grace period), then Redis."""

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from . import redis_server

GRACE = 10.0
"""Seconds a worker may take to finish its job after Ctrl-C before it is killed."""

COLD_GRACE = 5.0
"""Seconds a worker may take to stop after the second SIGTERM (rq's cold shutdown)."""

POLL = 0.5
"""Seconds between two checks of the children."""

log = logging.getLogger("gradserve")


class Stack:
    """Redis (unless env has REDIS_URL), gunicorn and `workers` rq workers; `output` takes
    the children's stdout and stderr (default: this process's)."""

    def __init__(
        self,
        workers: int,
        data_dir: Path,
        env: Mapping[str, str] | None = None,
        output: IO | None = None,
    ) -> None:
        self.worker_count, self.data_dir, self.output = workers, data_dir, output
        self.env = dict(os.environ if env is None else env)
        self.redis: subprocess.Popen | None = None
        self.api: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self.stopping = False

    def start(self) -> None:
        if not self.env.get("REDIS_URL"):
            port = int(self.env.get("REDIS_PORT", "6379"))
            self.env["REDIS_URL"] = redis_server.url(port)
            self.redis = redis_server.start(
                port, self.data_dir / "redis", log_file=self.data_dir / "redis.log"
            )
            log.info("redis-server on %s, data in %s", self.env["REDIS_URL"], self.data_dir)
        redis_server.wait_ready(self.env["REDIS_URL"], self.redis)
        self.api = self._spawn(
            [sys.executable, "-m", "gunicorn", "-c", "python:service.gunicorn_conf"]
        )
        self.workers = [self._spawn_worker() for _ in range(self.worker_count)]
        log.info(
            "API on http://%s:%s, %d workers; `REDIS_URL=%s make worker` adds more",
            self.env.get("HOST", "127.0.0.1"),
            self.env.get("PORT", "8000"),
            self.worker_count,
            self.env["REDIS_URL"],
        )

    def _spawn(self, command: list[str]) -> subprocess.Popen:
        # Own sessions: Ctrl-C reaches this supervisor alone, which stops them in order.
        return subprocess.Popen(
            command, env=self.env, start_new_session=True, stdout=self.output, stderr=self.output
        )

    def _spawn_worker(self) -> subprocess.Popen:
        return self._spawn([sys.executable, "-m", "service.worker"])

    def supervise(self) -> int:
        while not self.stopping:
            time.sleep(POLL)
            if self.redis is not None and self.redis.poll() is not None:
                log.error("redis-server exited (%s): stopping", self.redis.returncode)
                return 1
            if self.api is not None and self.api.poll() is not None:
                log.error("gunicorn exited (%s): stopping", self.api.returncode)
                return 1
            for i, worker in enumerate(self.workers):
                if worker.poll() is not None and not self.stopping:
                    log.warning(
                        "worker %d exited (%s): starting another", worker.pid, worker.returncode
                    )
                    self.workers[i] = self._spawn_worker()
        return 0

    def stop(self) -> None:
        self.stopping = True
        for process in [self.api, *self.workers]:
            _signal(process, signal.SIGTERM)  # rq: a warm shutdown, the job in hand finishes
        _wait(self.api, GRACE)
        deadline = time.monotonic() + GRACE
        for worker in self.workers:
            try:
                worker.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal(worker, signal.SIGTERM)  # again: rq's cold shutdown kills its job
        for worker in self.workers:
            _wait(worker, COLD_GRACE)
        if self.redis is not None:
            _signal(self.redis, signal.SIGTERM)  # Redis syncs its append-only file on the way
            _wait(self.redis, GRACE)


def _signal(process: subprocess.Popen | None, sig: int) -> None:
    if process is not None and process.poll() is None:
        process.send_signal(sig)


def _wait(process: subprocess.Popen | None, timeout: float) -> None:
    """Wait for a child; kill it (and its own children: its process group) if it lingers."""
    if process is None:
        return
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        log.warning("pid %d did not stop in time: killed", process.pid)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    workers = int(os.environ.get("WORKERS", os.cpu_count() or 1))
    stack = Stack(workers, Path(os.environ.get("GRADSERVE_DATA_DIR", "var")).resolve())

    def request_stop(signum: int, frame: object) -> None:
        stack.stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    status = 1
    try:
        stack.start()
        status = stack.supervise()
    finally:
        log.info("stopping")
        stack.stop()
    sys.exit(status)


if __name__ == "__main__":
    main()
