"""A running job's lease, kept alive by a heartbeat thread in the process that runs the job.

The lease is a key with a time to live; a job whose lease lapses is handed back to the queue
by the reaper (service.worker.reaper). The heartbeat renews it every third of its time to live
while the job is still this run's, takes it again if it lapsed while Redis was unreachable,
and says `lost` once the job moved on (cancelled, or handed to another run): the job then
stops at its next step and writes nothing more (its writes would be refused anyway).
"""

import logging
import os
import threading

import redis

from ..store import JobStore, Run

log = logging.getLogger(__name__)

hand_back_requested = threading.Event()
"""Set in a work-horse by SIGTERM (its worker is shutting down) or when its worker process is
gone: the running job checkpoints and hands itself back to the queue at its next step."""


class Lease:
    """Renews `run`'s lease on `job_id` every `ttl` / 3 seconds until stopped. With
    `parent` (the worker's pid), also watches that the worker is still there."""

    def __init__(
        self,
        store: JobStore,
        job_id: str,
        run: Run,
        owner: str,
        ttl: float,
        parent: int | None = None,
    ) -> None:
        self.store, self.job_id, self.run, self.owner, self.ttl = store, job_id, run, owner, ttl
        self.parent = parent
        self.lost = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{job_id}", daemon=True)

    def __enter__(self) -> "Lease":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopped.set()
        self._thread.join()

    def _beat(self) -> None:
        failing = False
        while not self._stopped.wait(self.ttl / 3):
            if self.parent is not None and os.getppid() != self.parent:
                log.warning("job %s: its worker is gone; handing it back", self.job_id)
                hand_back_requested.set()
            try:
                held = self.store.renew_lease(self.job_id, self.run, self.owner, self.ttl)
            except redis.RedisError as exc:
                if not failing:
                    log.warning("job %s: cannot renew the lease (%s); retrying", self.job_id, exc)
                failing = True
                continue
            failing = False
            if not held:
                self.lost.set()
                if not self._stopped.is_set():  # else the run just finished the job itself
                    log.info("job %s: no longer this run's", self.job_id)
                return
