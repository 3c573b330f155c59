"""A running job's `on_step`: it buffers the history and writes it a few times a second."""

import time
from collections.abc import Callable
from typing import Any

from .store import CancelListener, Json, Store


class JobStopped(Exception):
    """The job is no longer this run's to write (it was cancelled): stop quietly."""


class Recorder:
    """Called after each training step. Every `flush_interval` seconds it writes the steps
    since the last write, with progress and metrics, in one guarded call (not a round trip
    per step); every `checkpoint_interval` seconds that call carries a checkpoint too, so
    the stored history always reaches exactly the checkpoint's step. It raises JobStopped
    at the first step after a cancel, and when a write is refused."""

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
    ) -> None:
        self.store, self.job_id, self.attempt, self.cancel = store, job_id, attempt, cancel
        self.flush_interval, self.checkpoint_interval, self.clock = (
            flush_interval,
            checkpoint_interval,
            clock,
        )
        self.batch: Json = {"step": [], "loss": [], "accuracy": []}
        self.progress: Json = {"step": 0, "steps": steps}
        self.metrics: Json = {"loss": None, "accuracy": None}
        started = clock()
        self.next_flush = started + flush_interval
        self.next_checkpoint = started + checkpoint_interval

    def __call__(self, progress: Any) -> None:
        accuracy = None if progress.accuracy is None else float(progress.accuracy)
        loss = float(progress.loss)
        self.batch["step"].append(progress.step)
        self.batch["loss"].append(loss)
        self.batch["accuracy"].append(accuracy)
        self.progress["step"] = progress.step + 1
        self.metrics = {"loss": loss, "accuracy": accuracy}
        if self.cancel.cancelled():
            raise JobStopped(self.job_id)
        now = self.clock()
        if now >= self.next_checkpoint:
            self.flush(progress.checkpoint())
        elif now >= self.next_flush:
            self.flush()

    def flush(self, checkpoint: Json | None = None) -> None:
        if not self.store.record_progress(
            self.job_id, self.attempt, self.batch, self.progress, self.metrics, checkpoint
        ):
            raise JobStopped(self.job_id)
        self._written(checkpoint is not None)

    def complete(self, model: Json) -> bool:
        """The job succeeded: the rest of the history, the model, the final status."""
        return self.store.complete(
            self.job_id, self.attempt, self.batch, self.progress, self.metrics, model
        )

    def fail(self, error: Json) -> bool:
        """The job failed: the rest of the history (kept), and the problem."""
        return self.store.fail(
            self.job_id, self.attempt, self.batch, self.progress, self.metrics, error
        )

    def _written(self, with_checkpoint: bool) -> None:
        self.batch = {"step": [], "loss": [], "accuracy": []}
        now = self.clock()
        self.next_flush = now + self.flush_interval
        if with_checkpoint:
            self.next_checkpoint = now + self.checkpoint_interval
