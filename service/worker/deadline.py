"""A job's timeout, kept even inside one long step.

The recorder fails a job at the first step past its timeout. A step can take minutes (a
wide network on many samples), so in a work-horse a timer also watches the time: once the
run is past its timeout by GRACE (the step check had its chance), it writes the failure
itself, between two of the recorder's writes and fenced on the run's token like them, and
ends the work-horse at once. Its worker then finds the job failed and hands nothing back.
"""

import logging
import os
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

GRACE = 1.0
"""Seconds past the timeout before the timer acts: a run of short steps stops at a step."""

EXIT_TIMED_OUT = 3
"""The work-horse's exit status when the timer ended it."""


class Deadline:
    """After `seconds`, `expire()` (which writes the failure; False if the run had ended
    or the job was no longer the run's), then `exit(EXIT_TIMED_OUT)`. Cancelled on leaving
    the block."""

    def __init__(
        self,
        job_id: str,
        seconds: float,
        expire: Callable[[], bool],
        exit: Callable[[int], object] = os._exit,
    ) -> None:
        self.job_id, self.expire, self.exit = job_id, expire, exit
        self._timer = threading.Timer(max(0.0, seconds) + GRACE, self._fire)
        self._timer.daemon = True

    def __enter__(self) -> "Deadline":
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()

    def _fire(self) -> None:
        if self.expire():
            log.warning("job %s: past its timeout inside a step: failed, ending", self.job_id)
            self.exit(EXIT_TIMED_OUT)
