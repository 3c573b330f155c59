"""The reaper: nothing stays `running` without a worker, nor `queued` without an rq job.

Each pass (at worker start, then every REAPER_INTERVAL in a thread of every worker's main
process; across workers one pass per interval, taken in turn) hands back to the queue every
running job whose lease has lapsed (its worker was killed, lost its machine, or was cut off
from Redis for longer than LEASE_TTL), rewound to its checkpoint, and gives a new rq job to
every queued job whose rq job left the queue without starting it (a worker died between
taking it and starting it) for longer than LEASE_TTL. Every change is a guarded transaction
(service.store.requeue): passes running at once in many workers are safe. Each pass also
sweeps from the indexes the finished jobs Redis deleted at the end of their retention
(service.store.retention).
"""

import logging
import threading
from collections.abc import Mapping
from typing import Any, NamedTuple

import redis
from rq import Queue

from .. import problems
from ..store import JobStore, requeue
from ..store.queue import Enqueuer, training_enqueuer
from ..store.retention import adopt_finished, sweep_expired

log = logging.getLogger(__name__)


class Pass(NamedTuple):
    """What one pass did: job ids handed back, failed (lost too often), given a new rq job,
    swept from the indexes (expired)."""

    requeued: list[str]
    failed: list[str]
    stranded: list[str]
    expired: list[str]


class Reaper:
    def __init__(self, store: JobStore, queue: Queue, config: Mapping[str, Any]) -> None:
        self.store, self.queue = store, queue
        self.enqueue: Enqueuer = training_enqueuer(queue)
        self.interval: float = config["REAPER_INTERVAL"]
        self.grace: float = config["LEASE_TTL"]
        self.max_lost: int = config["MAX_LOST_RUNS"]
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> Pass:
        done = Pass([], [], [], [])
        for job_id in requeue.running_without_lease(self.store):
            outcome = self.lost(job_id)
            if outcome:
                (done.requeued if outcome == "queued" else done.failed).append(job_id)
        # Tickets before the queue: a ticket enters the queue in the transaction that
        # writes it, so one missing from the queue read after it has really left it.
        queued = requeue.queued_tickets(self.store)
        in_queue = set(self.queue.get_job_ids()) if queued else set()
        for job_id, ticket in queued:
            ticket = ticket or self.enqueue.ticket(job_id)
            if ticket in in_queue or not requeue.stranded(self.store, job_id, ticket, self.grace):
                continue
            if requeue.requeue_stranded(self.store, job_id, ticket, self.enqueue):
                log.warning("job %s: its rq job %s vanished; enqueued again", job_id, ticket)
                done.stranded.append(job_id)
        done.expired.extend(sweep_expired(self.store))
        try:
            adopt_finished(self.store)
        except redis.exceptions.OutOfMemoryError:
            pass  # Redis is full: at a later pass
        return done

    def lost(self, job_id: str, owner: str | None = None) -> str | None:
        """Hand back (or fail) a running job whose run is lost: with `owner`, the run of that
        worker's work-horse, which died; else one whose lease lapsed."""
        error = problems.worker_lost(self.max_lost + 1)
        outcome = requeue.requeue_lost(
            self.store, job_id, self.enqueue, self.max_lost, error, owner
        )
        if outcome == "queued":
            log.warning("job %s: its run was lost; queued again from its checkpoint", job_id)
        elif outcome == "failed":
            log.error("job %s: lost %d times in a row: failed", job_id, self.max_lost + 1)
        return outcome

    def start(self) -> None:
        """A pass now, then one every interval (one across all workers) in a thread."""
        self._pass()
        self._thread = threading.Thread(target=self._loop, name="reaper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        while not self._stopped.wait(self.interval):
            try:
                if requeue.take_reaper_turn(
                    self.store, 0.9 * self.interval
                ):  # expires before the next
                    self._pass()
            except redis.RedisError as exc:
                log.warning("reaper: Redis unreachable (%s); trying again", exc)

    def _pass(self) -> None:
        try:
            self.run_once()
        except redis.RedisError as exc:
            log.warning("reaper: Redis unreachable (%s); trying again", exc)
