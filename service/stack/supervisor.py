"""`python -m service.stack` (`make run`): the whole stack on one machine, supervised.

Redis (the bundled redis-server, its append-only file under ./var/, unless REDIS_URL
points elsewhere), the API under gunicorn on 127.0.0.1:$PORT, and $WORKERS rq workers
(one per core by default); a child that dies is started again (Redis on the same data).
Ctrl-C or SIGTERM stops the API, then the workers (each hands its job back to the queue,
checkpointed, at the job's next step; one that takes longer than a grace period is
stopped, its job resumed from its latest checkpoint next time), then Redis."""

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
"""Seconds a worker may take to hand its job back after Ctrl-C (one training step) before
it gets a second SIGTERM."""

COLD_GRACE = 5.0
"""Seconds a worker may take to stop after the second SIGTERM (rq's cold shutdown: its
work-horse is killed and the job handed back from its latest checkpoint)."""

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
        self.redis_port = 0
        self.api: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self.stopping = False

    def start(self) -> None:
        if not self.env.get("REDIS_URL"):
            self.redis_port = int(self.env.get("REDIS_PORT", "6379"))
            self.env["REDIS_URL"] = redis_server.url(self.redis_port)
            self._start_redis()
            log.info("redis-server on %s, data in %s", self.env["REDIS_URL"], self.data_dir)
        redis_server.wait_ready(self.env["REDIS_URL"], self.redis)
        self.api = self._spawn_api()
        self.workers = [self._spawn_worker() for _ in range(self.worker_count)]
        log.info(
            "API on http://%s:%s, %d workers; `REDIS_URL=%s make worker` adds more",
            self.env.get("HOST", "127.0.0.1"),
            self.env.get("PORT", "8000"),
            self.worker_count,
            self.env["REDIS_URL"],
        )

    def _start_redis(self) -> None:
        self.redis = redis_server.start(
            self.redis_port, self.data_dir / "redis", log_file=self.data_dir / "redis.log"
        )

    def _spawn_api(self) -> subprocess.Popen:
        return self._spawn(
            [sys.executable, "-m", "gunicorn", "-c", "python:service.api.gunicorn_conf"]
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
            if self.redis is not None and self.redis.poll() is not None and not self.stopping:
                log.error("redis-server exited (%s): starting it again", self.redis.returncode)
                self._start_redis()  # it reloads its append-only file: no job is lost
                try:
                    redis_server.wait_ready(self.env["REDIS_URL"], self.redis)
                except RuntimeError as exc:
                    log.error("%s: stopping", exc)
                    return 1
            if self.api is not None and self.api.poll() is not None and not self.stopping:
                log.error("gunicorn exited (%s): starting it again", self.api.returncode)
                self.api = self._spawn_api()
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
            _signal(process, signal.SIGTERM)  # a worker hands its job back at the next step
        _wait(self.api, GRACE)
        deadline = time.monotonic() + GRACE
        for worker in self.workers:
            try:
                worker.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal(worker, signal.SIGTERM)  # again: rq's cold shutdown kills its horse
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
