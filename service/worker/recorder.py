"""A running job's `on_step`: it buffers the history and writes it a few times a second."""

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import redis

from .. import settings
from ..retry import retry
from ..store import HistoryMismatch, JobStore, Report, Run
from ..store.cancel import CancelListener
from ..store.changes import Json
from ..store.history import cut, empty_batch
from ..store.queue import Enqueue
from ..store.requeue import hand_back
from .lease import Lease

log = logging.getLogger(__name__)
# Redis full (maxmemory) is waited out as an outage is: the refused write wrote nothing.
UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, redis.exceptions.OutOfMemoryError)


class JobStopped(Exception):
    """The job is no longer this run's to write (it was cancelled): stop quietly."""


class JobCancelled(Exception):
    """Raised out of a work-horse's job function when its run ended because the job was
    cancelled (or deleted): rq then records its rq job as stopped on request, as when the
    worker kills the horse inside a step (service.worker.main), not as finished."""


class JobHandedBack(Exception):
    """The job went back to the queue, checkpointed, for another run to resume."""


class JobTimedOut(Exception):
    """The job trained past its timeout (all its runs together)."""

    def __init__(self, limit: float) -> None:
        super().__init__(f"the job trained past its timeout of {limit} s")
        self.limit = limit


@dataclass(frozen=True)
class Pace:
    """How often a run writes, how long it may train, how long it waits for Redis."""

    flush_interval: float  # seconds between two writes of the history
    checkpoint_interval: float  # seconds between two checkpoints (carried by a write)
    time_limit: float | None = None  # seconds of training, all the job's runs together
    patience: float = settings.WRITE_PATIENCE  # seconds a final write waits for Redis
    webhook_interval: float = settings.WEBHOOK_PROGRESS_INTERVAL  # between progress webhooks

    @classmethod
    def from_config(cls, config: Mapping[str, Any], spec: Json | None = None) -> "Pace":
        """The pace of a job with `spec`: its `timeout` (a spec older than the field has
        JOB_TIMEOUT_DEFAULT's)."""
        timeout = (spec or {}).get("timeout") or config["JOB_TIMEOUT_DEFAULT"]
        return cls(
            config["HISTORY_FLUSH_INTERVAL"],
            config["CHECKPOINT_INTERVAL"],
            timeout,
            config["WRITE_PATIENCE"],
            config["WEBHOOK_PROGRESS_INTERVAL"],
        )


@dataclass(frozen=True)
class Watch:
    """What a run heeds between two steps: a cancel and a lost lease stop it; `hand_back`
    set (its worker is stopping) checkpoints it and gives the job back through `enqueue`."""

    cancel: CancelListener
    lease: Lease | None = None
    hand_back: threading.Event | None = None
    enqueue: Enqueue | None = None


class Recorder:
    """Called after each training step. Every `flush_interval` seconds it writes the steps
    since the last write, with progress and metrics, in one guarded call (not a round trip
    per step); every `checkpoint_interval` seconds that call carries a checkpoint too, so
    the stored history always reaches exactly the checkpoint's step.

    Every write is fenced on the run's token and must continue the stored history exactly;
    a write that fails because Redis is unreachable keeps its steps for the next flush while
    training goes on. It raises JobStopped at the first step after a cancel or a lost
    lease, and when a write is refused; JobHandedBack once it gave the job back; JobTimedOut
    past the time limit.

    Its steps and its end are written under `lock`, so a thread may end the run between two
    writes (service.worker.deadline); a run writes one end (a result, a failure or a
    hand-back), the first."""

    def __init__(
        self,
        store: JobStore,
        job_id: str,
        run: Run,
        pace: Pace,
        watch: Watch,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store, self.job_id, self.run = store, job_id, run
        self.pace, self.watch, self.clock = pace, watch, clock
        self.batch: Json = empty_batch()
        first_step = run.checkpoint["step"] if run.checkpoint else 0
        self.progress: Json = {"step": first_step, "steps": run.spec["steps"]}
        self.metrics: Json = {"loss": None, "accuracy": None}
        self.unreachable = False
        self.started = clock()
        self.next_flush = self.started + pace.flush_interval
        self.next_checkpoint = self.started + pace.checkpoint_interval
        self.lock = threading.RLock()
        self.ended = False
        webhook = run.spec.get("webhook") or {}
        self.progress_webhook = "progress" in webhook.get("events", ())
        self.next_webhook = self.started + pace.webhook_interval

    def __call__(self, progress: Any) -> None:
        with self.lock:
            self._record(progress)

    def _record(self, progress: Any) -> None:
        accuracy = None if progress.accuracy is None else float(progress.accuracy)
        loss = float(progress.loss)
        self.batch["step"].append(progress.step)
        self.batch["loss"].append(loss)
        self.batch["accuracy"].append(accuracy)
        self.progress["step"] = progress.step + 1
        self.metrics = {"loss": loss, "accuracy": accuracy}
        watch = self.watch
        if watch.cancel.cancelled() or (watch.lease is not None and watch.lease.lost.is_set()):
            raise JobStopped(self.job_id)
        if watch.hand_back is not None and watch.hand_back.is_set():
            self.hand_back(progress.checkpoint(arrays=True))
        now = self.clock()
        limit = self.pace.time_limit
        if limit is not None and self.trained(now) > limit:
            raise JobTimedOut(limit)
        if now >= self.next_checkpoint:
            self.flush(progress.checkpoint(arrays=True))
        elif now >= self.next_flush:
            self.flush()

    def trained(self, now: float) -> float:
        """Seconds of training so far, earlier runs (up to their checkpoints) included."""
        return self.run.trained_seconds + (now - self.started)

    def flush(self, checkpoint: Json | None = None) -> None:
        seconds = self.trained(self.clock()) if checkpoint else None
        # A progress webhook rides on a write, at most one per webhook_interval (the store
        # coalesces it with one still pending); the sender, not the run, posts it.
        due = self.progress_webhook and self.clock() >= self.next_webhook
        webhook = "progress" if due else None
        try:
            done = self._write(checkpoint=checkpoint, trained_seconds=seconds, webhook=webhook)
        except UNREACHABLE as exc:
            if not self.unreachable:
                log.warning("job %s: cannot write its history (%s); retrying", self.job_id, exc)
            self.unreachable = True
            # keep the steps; try again a flush interval later (a checkpoint, too)
            self.next_flush = self.clock() + self.pace.flush_interval
            self.next_checkpoint = max(self.next_checkpoint, self.next_flush)
            return
        self.unreachable = False
        if not done:
            raise JobStopped(self.job_id)
        self.batch = empty_batch()
        now = self.clock()
        self.next_flush = now + self.pace.flush_interval
        if webhook is not None:
            self.next_webhook = now + self.pace.webhook_interval
        if checkpoint is not None:
            self.next_checkpoint = now + self.pace.checkpoint_interval

    def complete(self, model: Json) -> bool:
        """The job succeeded: the rest of the history, the model, the final status."""
        return self._end(lambda: self._write(model=model))

    def fail(self, error: Json) -> bool:
        """The job failed: the rest of the history (kept), and the problem."""
        return self._end(lambda: self._write(error=error))

    def _end(self, write: Callable[[], bool]) -> bool:
        """The run's end, written unless it has one already; False if not written."""
        with self.lock:
            if self.ended:
                return False
            self.ended = True
            return bool(self._patiently(write))

    def hand_back(self, checkpoint: Json | None) -> None:
        """Give the job back to the queue with its steps so far and `checkpoint` (None: back
        to the checkpoint Redis has); raises JobHandedBack, or JobStopped if it was not
        this run's any more (or Redis stayed unreachable: the reaper will hand it back)."""
        self.ended = True  # (under the lock: called while recording a step)
        enqueue = self.watch.enqueue
        if enqueue is None:
            raise JobStopped(self.job_id)  # no queue to hand it back to
        report = Report(
            self.batch,
            self.progress,
            self.metrics,
            checkpoint=checkpoint,
            trained_seconds=self.trained(self.clock()),
        )
        given = self._patiently(
            lambda: hand_back(self.store, self.job_id, self.run.token, report, enqueue)
        )
        raise JobHandedBack(self.job_id) if given else JobStopped(self.job_id)

    def _write(self, **extra: Any) -> bool:
        """One guarded write of the batch (with `extra` parts of a Report); a batch Redis
        already partly has is cut to the new steps, one Redis no longer reaches (it lost
        steps) sends the job back to the queue."""
        while True:
            report = Report(self.batch, self.progress, self.metrics, **extra)
            try:
                return self.store.record(self.job_id, self.run.token, report)
            except HistoryMismatch as mismatch:
                if mismatch.behind:
                    log.warning("job %s: Redis lost steps; back to its checkpoint", self.job_id)
                    self.hand_back(None)
                self.batch = cut(self.batch, mismatch.recorded)

    def _patiently(self, call: Callable[[], bool]) -> bool | None:
        """call(), retried while Redis is unreachable for up to `patience` seconds; None if
        it never got through (the reaper then resumes the job from its checkpoint)."""
        try:
            return retry(call, UNREACHABLE, self.pace.patience)
        except UNREACHABLE as exc:
            log.error("job %s: Redis unreachable, giving up (%s)", self.job_id, exc)
            return None
