"""A running job's `on_step`: it buffers the history and writes it a few times a second."""

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from . import settings
from .queue import Enqueue
from .requeue import hand_back
from .store import CancelListener, HistoryMismatch, Json, Store

log = logging.getLogger(__name__)
UNREACHABLE = (redis.ConnectionError, redis.TimeoutError)


class JobStopped(Exception):
    """The job is no longer this run's to write (it was cancelled): stop quietly."""


class JobHandedBack(Exception):
    """The job went back to the queue, checkpointed, for another run to resume."""


class JobTimedOut(Exception):
    """The job trained past its time limit (all its runs together)."""

    def __init__(self, limit: float) -> None:
        super().__init__(f"the job ran past its limit of {limit} s")
        self.limit = limit


class Recorder:
    """Called after each training step. Every `flush_interval` seconds it writes the steps
    since the last write, with progress and metrics, in one guarded call (not a round trip
    per step); every `checkpoint_interval` seconds that call carries a checkpoint too, so
    the stored history always reaches exactly the checkpoint's step. It raises JobStopped
    at the first step after a cancel, and when a write is refused.

    For a worker's run (`token` given) every write is fenced on the run's token and must
    continue the stored history exactly; a write that fails because Redis is unreachable
    keeps its steps for the next flush while training goes on. Between steps it also
    honours `lease` (lost: stop), `hand_back` (set: checkpoint now and give the job back to
    the queue) and `time_limit` (seconds of training, earlier runs included)."""

    def __init__(
        self,
        store: Store,
        job_id: str,
        attempt: int,
        steps: int,
        cancel: CancelListener,
        flush_interval: float,
        checkpoint_interval: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        token: str | None = None,
        first_step: int = 0,
        lease: Any = None,
        hand_back: threading.Event | None = None,
        enqueue: Enqueue | None = None,
        time_limit: float | None = None,
        trained_seconds: float = 0.0,
        patience: float = settings.WRITE_PATIENCE,
    ) -> None:
        self.store, self.job_id, self.attempt, self.cancel = store, job_id, attempt, cancel
        self.flush_interval, self.checkpoint_interval, self.clock = (
            flush_interval,
            checkpoint_interval,
            clock,
        )
        self.token, self.lease, self.hand_back_requested, self.enqueue = (
            token,
            lease,
            hand_back,
            enqueue,
        )
        self.time_limit, self.trained_before, self.patience = time_limit, trained_seconds, patience
        self.batch: Json = {"step": [], "loss": [], "accuracy": []}
        self.progress: Json = {"step": first_step, "steps": steps}
        self.metrics: Json = {"loss": None, "accuracy": None}
        self.unreachable = False
        self.started = clock()
        self.next_flush = self.started + flush_interval
        self.next_checkpoint = self.started + checkpoint_interval

    def __call__(self, progress: Any) -> None:
        accuracy = None if progress.accuracy is None else float(progress.accuracy)
        loss = float(progress.loss)
        self.batch["step"].append(progress.step)
        self.batch["loss"].append(loss)
        self.batch["accuracy"].append(accuracy)
        self.progress["step"] = progress.step + 1
        self.metrics = {"loss": loss, "accuracy": accuracy}
        if self.cancel.cancelled() or (self.lease is not None and self.lease.lost.is_set()):
            raise JobStopped(self.job_id)
        if self.hand_back_requested is not None and self.hand_back_requested.is_set():
            self.hand_back(progress.checkpoint())
        now = self.clock()
        if self.time_limit is not None and self.trained(now) > self.time_limit:
            raise JobTimedOut(self.time_limit)
        if now >= self.next_checkpoint:
            self.flush(progress.checkpoint())
        elif now >= self.next_flush:
            self.flush()

    def trained(self, now: float) -> float:
        """Seconds of training so far, earlier runs (up to their checkpoints) included."""
        return self.trained_before + (now - self.started)

    def flush(self, checkpoint: Json | None = None) -> None:
        try:
            done = self._write(
                lambda: self.store.record_progress(
                    self.job_id,
                    self.attempt,
                    self.batch,
                    self.progress,
                    self.metrics,
                    checkpoint,
                    token=self.token,
                    checked=self.token is not None,
                    trained_seconds=self.trained(self.clock()) if checkpoint else None,
                )
            )
        except UNREACHABLE as exc:
            if not self.unreachable:
                log.warning("job %s: cannot write its history (%s); retrying", self.job_id, exc)
            self.unreachable = True
            # keep the steps; try again a flush interval later (a checkpoint, too)
            self.next_flush = self.clock() + self.flush_interval
            self.next_checkpoint = max(self.next_checkpoint, self.next_flush)
            return
        self.unreachable = False
        if not done:
            raise JobStopped(self.job_id)
        self._written(checkpoint is not None)

    def complete(self, model: Json) -> bool:
        """The job succeeded: the rest of the history, the model, the final status."""
        return self._finish(
            lambda: self.store.complete(
                self.job_id,
                self.attempt,
                self.batch,
                self.progress,
                self.metrics,
                model,
                token=self.token,
                checked=self.token is not None,
            )
        )

    def fail(self, error: Json) -> bool:
        """The job failed: the rest of the history (kept), and the problem."""
        return self._finish(
            lambda: self.store.fail(
                self.job_id,
                self.attempt,
                self.batch,
                self.progress,
                self.metrics,
                error,
                token=self.token,
                checked=self.token is not None,
            )
        )

    def hand_back(self, checkpoint: Json | None) -> None:
        """Give the job back to the queue with its steps so far and `checkpoint` (None: back
        to the checkpoint Redis has); raises JobHandedBack, or JobStopped if it was not
        this run's any more (or Redis stayed unreachable: the reaper will hand it back)."""
        if self.enqueue is None or self.token is None:
            raise JobStopped(self.job_id)  # not a worker's run: nothing to hand back to
        given = self._patiently(
            lambda: hand_back(
                self.store,
                self.job_id,
                self.attempt,
                self.token,
                self.batch,
                self.progress,
                self.metrics,
                checkpoint,
                self.trained(self.clock()),
                self.enqueue,
            )
        )
        raise JobHandedBack(self.job_id) if given else JobStopped(self.job_id)

    def _write(self, call: Callable[[], bool]) -> bool:
        """A guarded write of the batch; a batch Redis already partly has is cut to the new
        steps, one Redis no longer reaches (it lost steps) sends the job back to the queue."""
        while True:
            try:
                return call()
            except HistoryMismatch as mismatch:
                if mismatch.behind:
                    log.warning("job %s: Redis lost steps; back to its checkpoint", self.job_id)
                    self.hand_back(None)
                first = self.batch["step"][0]
                self.batch = {k: v[mismatch.recorded - first :] for k, v in self.batch.items()}

    def _finish(self, call: Callable[[], bool]) -> bool:
        return bool(self._patiently(lambda: self._write(call)))

    def _patiently(self, call: Callable[[], bool]) -> bool | None:
        """call(), retried while Redis is unreachable for up to `patience` seconds; None if
        it never got through (the reaper then resumes the job from its checkpoint)."""
        deadline = time.monotonic() + self.patience
        while True:
            try:
                return call()
            except UNREACHABLE as exc:
                if time.monotonic() > deadline:
                    log.error("job %s: Redis unreachable, giving up (%s)", self.job_id, exc)
                    return None
                time.sleep(0.5)

    def _written(self, with_checkpoint: bool) -> None:
        self.batch = {"step": [], "loss": [], "accuracy": []}
        now = self.clock()
        self.next_flush = now + self.flush_interval
        if with_checkpoint:
            self.next_checkpoint = now + self.checkpoint_interval
