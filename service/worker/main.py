"""`python -m service.worker`: one rq worker on gradserve's queue, for the Redis at
REDIS_URL. Start as many as you like, on any machine that reaches that Redis."""

import argparse
import contextlib
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
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.serializers import JSONSerializer

from ..config import load_config
from ..store import JobStore
from ..store.queue import TRAIN, connect, make_queue
from . import warm
from .allowlist import GradserveJob, refusal
from .cancel_watch import CancelWatch
from .lease import hand_back_requested
from .reaper import Reaper
from .recorder import JobCancelled
from .webhook_sender import WebhookSender

log = logging.getLogger("gradserve.worker")


class GradserveWorker(Worker):
    """rq's forking worker, made to run only gradserve's job functions and to lose no job:

    - A queue entry naming anything else (another function, callbacks, webhooks,
      dependencies) is refused before anything is imported: failed into rq's failed
      registry and logged (service.worker.allowlist).
    - A cancel of the training job it runs kills its work-horse at once
      (service.worker.cancel_watch), even inside one long step.
    - SIGTERM or Ctrl-C (rq's warm shutdown) is passed on to the work-horse, whose job
      checkpoints and hands itself back to the queue at its next step; then the worker
      exits. A second one (rq's cold shutdown) kills the horse and hands its job back from
      the latest checkpoint.
    - A horse that dies (killed, out of memory) has its job handed back at once.
    - A reaper (service.worker.reaper) runs at start and every REAPER_INTERVAL in a thread.
    - Webhook senders (service.worker.webhook_sender) post due deliveries from threads.
    - After a Redis outage it reconnects within seconds (rq backs off up to a minute).
    """

    max_connection_wait_time = 2.0

    def __init__(self, *args: Any, config: Mapping[str, Any] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.config = config if config is not None else load_config()
        self._running: Job | None = None
        self._reaper: Reaper | None = None
        self._webhooks: WebhookSender | None = None
        self._cancel_watch: CancelWatch | None = None

    def bootstrap(self, *args: Any, **kwargs: Any) -> None:
        super().bootstrap(*args, **kwargs)
        self._reaper = self._make_reaper()
        self._reaper.start()
        # Its own client too: a slow receiver never holds up the reaper or rq.
        connection = connect(self.config["REDIS_URL"], self.config["WORKER_REDIS_TIMEOUT"])
        self._webhooks = WebhookSender(connection, self.config)
        self._webhooks.start()

    def teardown(self) -> None:
        if not self.is_horse:
            if self._reaper is not None:
                self._reaper.stop()
            if self._webhooks is not None:
                self._webhooks.stop()
            # rq's warm shutdown raises StopRequested from its signal handler, anywhere: between
            # a command's send and its read it leaves the reply to come on a connection back
            # in the pool (a BLPOP's, seconds later), which rq's last pipeline would then read
            # as its own ("Wrong number of response items"). Its last words go on fresh ones
            # (the pool's idle connections closed; its pubsub thread's, in use, is not).
            self.connection.connection_pool.disconnect(inuse_connections=False)
        super().teardown()

    def _make_reaper(self) -> Reaper:
        # Its own client: short timeouts, and no share in rq's blocking connection.
        connection = connect(self.config["REDIS_URL"], self.config["WORKER_REDIS_TIMEOUT"])
        return Reaper(JobStore(connection), make_queue(connection, self.config), self.config)

    def execute_job(self, job: Job, queue: Queue) -> None:
        reason = refusal(job)
        if reason is not None:
            self._refuse(job, queue, reason)
            return
        self._running = job
        if job.func_name == TRAIN and self._reaper is not None:
            warm.before_fork(self._reaper.store, job.args[0])  # horses inherit its program
        try:
            with self._watch_for_cancel(job):
                super().execute_job(job, queue)
        finally:
            self._running = None
            self._cancel_watch = None
            self._stopped_job_id = None  # set by a cancel the horse beat to its end

    def _refuse(self, job: Job, queue: Queue, reason: str) -> None:
        """Fail a queue entry that is not one of gradserve's jobs, touching nothing it names
        (no callback, no webhook, no dependents: not rq's handle_job_failure)."""
        log.error("refused rq job %s: %s", job.id, reason)
        with self.connection.pipeline() as pipe:
            job.set_status(JobStatus.FAILED, pipeline=pipe)
            job._handle_failure(f"refused by gradserve's worker: {reason}", pipe, self.name)
            pipe.lrem(queue.intermediate_queue_key, 1, job.id)
            pipe.execute()

    def _watch_for_cancel(self, job: Job) -> CancelWatch | contextlib.nullcontext[None]:
        if job.func_name != TRAIN or self._reaper is None:
            return contextlib.nullcontext()
        self._cancel_watch = CancelWatch(
            self._reaper.store, job.args[0], lambda: self._stop_horse(job)
        )
        return self._cancel_watch

    def fork_work_horse(self, job: Job, queue: Queue) -> None:
        super().fork_work_horse(job, queue)  # only the worker returns from it
        if self._cancel_watch is not None:
            self._cancel_watch.start()

    def _stop_horse(self, job: Job) -> None:
        """Kill the horse (its process group) now: rq then records its rq job as stopped on
        request, and no hand-back is tried (the job is cancelled already)."""
        pid = self.horse_pid
        if not pid:
            return
        self._stopped_job_id = job.id
        try:
            os.killpg(pid, signal.SIGKILL)  # the horse leads its own process group
        except ProcessLookupError:
            pass  # it ended on its own meanwhile

    def handle_exception(self, job: Job, *exc_info: Any) -> None:
        """In the horse: a job function that stopped because its job was cancelled (it saw the
        cancel between two steps, before this worker killed it) has rq record its rq job
        as stopped on request, as the kill does: not failed, not retried, nothing logged as
        an error."""
        if isinstance(exc_info[1], JobCancelled):
            log.info("job %s was cancelled: its work-horse stopped between two steps", job.args[0])
            self._stopped_job_id = job.id  # read by rq's handle_job_failure, called next
            return
        super().handle_exception(job, *exc_info)

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
    queue = make_queue(connection, config)
    queue.job_class = GradserveJob  # its registries' clean-ups too
    worker = GradserveWorker(
        [queue],
        connection=connection,
        serializer=JSONSerializer,
        job_class=GradserveJob,
        name=name,
        config=config,
    )
    worker.work(burst=args.burst, logging_level="INFO")


if __name__ == "__main__":
    main()
