"""A cancel stops a training job's computation at once, even inside one long step.

The work-horse looks for a cancel only between two steps, and one step can take minutes
(a wide network on many samples). Its worker's main process is idle meanwhile, waiting for
the horse: it listens on the job's cancel channel and kills the horse (SIGKILL) when the
cancel comes. The job is already `cancelled` in Redis by then, and every write of its run
is fenced on the run's token, so nothing the dead horse left undone needs doing.
"""

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager

import redis

from ..store import JobStore
from ..store.cancel import CancelListener

log = logging.getLogger(__name__)


class CancelWatch:
    """Calls `stop()` (once) when `job_id` is cancelled, from a thread started by `start()`.

    Subscribed on entering (before the horse starts the job: a cancel before that finds
    the job cancelled when the horse starts it), unsubscribed on leaving."""

    POLL = 0.1  # seconds between two looks at the subscription (a socket poll, no round trip)

    def __init__(self, store: JobStore, job_id: str, stop: Callable[[], None]) -> None:
        self.store, self.job_id, self.stop = store, job_id, stop
        self._subscription: AbstractContextManager[CancelListener] | None = None
        self._listener: CancelListener | None = None
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "CancelWatch":
        try:
            self._subscription = self.store.cancel_listener(self.job_id)
            self._listener = self._subscription.__enter__()
        except redis.RedisError as exc:  # the horse still stops at its next step
            log.warning("job %s: cannot listen for its cancel (%s)", self.job_id, exc)
            self._subscription = None
        return self

    def start(self) -> None:
        if self._listener is not None:
            self._thread = threading.Thread(
                target=self._watch, name=f"cancel-{self.job_id}", daemon=True
            )
            self._thread.start()

    def __exit__(self, *exc_info: object) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()
        if self._subscription is not None:
            self._subscription.__exit__(None, None, None)

    def _watch(self) -> None:
        assert self._listener is not None
        while not self._stopped.wait(self.POLL):
            if self._listener.cancelled():
                log.info("job %s was cancelled: stopping its work-horse", self.job_id)
                self.stop()
                return
