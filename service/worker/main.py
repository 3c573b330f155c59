"""`python -m service.worker`: one rq worker on gradserve's queue, for the Redis at
REDIS_URL. Start as many as you like, on any machine that reaches that Redis."""

import argparse
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Mapping
from typing import Any

import redis
from rq import Worker
from rq.job import Job
from rq.queue import Queue
from rq.serializers import JSONSerializer

from ..config import load_config
from ..store import JobStore
from ..store.queue import TRAIN, connect, make_queue
from .lease import hand_back_requested
from .reaper import Reaper

log = logging.getLogger("gradserve.worker")


class GradserveWorker(Worker):
    """rq's forking worker, made to lose no job:

    - SIGTERM or Ctrl-C (rq's warm shutdown) is passed on to the work-horse, whose job
      checkpoints and hands itself back to the queue at its next step; then the worker
      exits. A second one (rq's cold shutdown) kills the horse and hands its job back from
      the latest checkpoint.
    - A horse that dies (killed, out of memory) has its job handed back at once.
    - A reaper (service.worker.reaper) runs at start and every REAPER_INTERVAL in a thread.
    - After a Redis outage it reconnects within seconds (rq backs off up to a minute).
    """

    max_connection_wait_time = 2.0

    def __init__(self, *args: Any, config: Mapping[str, Any] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.config = config if config is not None else load_config()
        self._running: Job | None = None
        self._reaper: Reaper | None = None

    def bootstrap(self, *args: Any, **kwargs: Any) -> None:
        super().bootstrap(*args, **kwargs)
        self._reaper = self._make_reaper()
        self._reaper.start()

    def teardown(self) -> None:
        if self._reaper is not None and not self.is_horse:
            self._reaper.stop()
        super().teardown()

    def _make_reaper(self) -> Reaper:
        # Its own client: short timeouts, and no share in rq's blocking connection.
        connection = connect(self.config["REDIS_URL"], self.config["WORKER_REDIS_TIMEOUT"])
        return Reaper(JobStore(connection), make_queue(connection, self.config), self.config)

    def execute_job(self, job: Job, queue: Queue) -> None:
        self._running = job
        try:
            super().execute_job(job, queue)
        finally:
            self._running = None

    def setup_work_horse_signals(self) -> None:
        """In the horse: Ctrl-C is the worker's to handle; SIGTERM asks for a hand-back."""
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, lambda signum, frame: hand_back_requested.set())

    def handle_warm_shutdown_request(self) -> None:
        super().handle_warm_shutdown_request()
        if self.horse_pid:
            self.kill_horse(signal.SIGTERM)  # the job hands itself back at its next step

    def request_force_stop(self, signum: int, frame: Any) -> None:
        try:
            super().request_force_stop(signum, frame)  # kills the horse, raises SystemExit
        except SystemExit:
            self._hand_back_dead_horses_job()
            raise

    def handle_work_horse_killed(self, job: Job, retpid: Any, ret_val: Any, rusage: Any) -> None:
        super().handle_work_horse_killed(job, retpid, ret_val, rusage)
        self._hand_back_dead_horses_job()

    def _hand_back_dead_horses_job(self) -> None:
        """The horse is dead: its job (if still running under this worker's lease) goes
        back to the queue now rather than when the lease lapses."""
        job = self._running
        if job is None or self._reaper is None or job.func_name != TRAIN:
            return
        try:
            self._reaper.lost(job.args[0], owner=self.name)
        except redis.RedisError as exc:
            log.warning("cannot hand back job %s now (%s): the reaper will", job.args[0], exc)


def registered_here(connection: redis.Redis) -> bool:
    """Is a worker of this host (its name starts with the host name) registered?"""
    try:
        names = [worker.name for worker in Worker.all(connection=connection)]
    except redis.RedisError:
        return False
    return any(name.startswith(f"{socket.gethostname()}.") for name in names)


def wait_for_redis(connection: redis.Redis) -> None:
    """Block until Redis answers (a worker started during an outage waits, quietly)."""
    while True:
        try:
            connection.ping()
            return
        except redis.RedisError as exc:
            log.warning("Redis does not answer (%s); waiting", exc)
            time.sleep(1.0)


def warn_if_not_durable(connection: redis.Redis) -> None:
    """Jobs outlive a Redis crash only with its append-only file, and never when it evicts."""
    try:
        appendonly = connection.config_get("appendonly").get("appendonly")
        policy = connection.config_get("maxmemory-policy").get("maxmemory-policy")
    except redis.RedisError:
        return  # CONFIG may be disabled (managed Redis): nothing to check
    if appendonly != "yes":
        log.warning("Redis runs without appendonly: a Redis crash loses jobs")
    if policy != "noeviction":
        log.warning("Redis maxmemory-policy is %s, not noeviction: jobs may be evicted", policy)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m service.worker", description=__doc__)
    parser.add_argument("--burst", action="store_true", help="quit when the queue is empty")
    parser.add_argument("--name", help="the worker's name (default: host and pid)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 0 if a worker of this host is registered in Redis (a "
        "container healthcheck), else 1",
    )
    args = parser.parse_args(argv)
    config = load_config()
    if args.check:
        sys.exit(0 if registered_here(connect(config["REDIS_URL"], timeout=2.0)) else 1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(message)s")
    # Loaded here, in the parent: each job runs in a fork that starts with the engine ready.
    from . import jobs  # noqa: F401

    connection = connect(config["REDIS_URL"], ride_through=config["WORKER_RIDE_THROUGH"])
    wait_for_redis(connection)
    warn_if_not_durable(connection)
    name = args.name or f"{socket.gethostname()}.{os.getpid()}"
    worker = GradserveWorker(
        [make_queue(connection, config)],
        connection=connection,
        serializer=JSONSerializer,
        name=name,
        config=config,
    )
    worker.work(burst=args.burst, logging_level="INFO")


if __name__ == "__main__":
    main()
