"""Workers run gradserve's own job functions and nothing else.

rq runs whatever a queue entry names: it imports the entry's function by its dotted path and
calls it, imports the success, failure and stopped callbacks it names, and sends its
webhooks. Anyone who can write to Redis can write an entry, so a worker checks each one
before it forks for it (`refusal`) and fails the entries it refuses without importing or
calling anything they name; `GradserveJob` makes every other path of rq that would import a
name or send a webhook (its registry clean-ups, a stopped job) do neither.
"""

import logging
import reprlib
from typing import Any

from rq.exceptions import DeserializationError
from rq.job import Job

from ..store.queue import EVALUATE_GRAPH, TRAIN

log = logging.getLogger(__name__)

JOB_FUNCTIONS = frozenset({TRAIN, EVALUATE_GRAPH})
"""The only functions a queue entry may name, each called with one resource id."""

_shown = reprlib.Repr()  # what an entry asked for, in full up to a point (for the log)
_shown.maxstring = _shown.maxother = 200


class RefusedJob(Exception):
    """A queue entry that names something other than gradserve's job functions."""


def refusal(job: Job) -> str | None:
    """Why the worker must not run `job` (None: it is one of gradserve's own). Reads the
    entry only: nothing it names is imported."""
    try:
        func_name, instance = job.func_name, job.instance
        args, kwargs = job.args, job.kwargs
    except DeserializationError:
        return "its data cannot be read"
    if not isinstance(func_name, str) or func_name not in JOB_FUNCTIONS or instance is not None:
        return f"it names {_shown.repr(func_name)}, not one of gradserve's job functions"
    one_id = isinstance(args, list | tuple) and len(args) == 1 and isinstance(args[0], str)
    if kwargs or not one_id:
        return f"it calls {func_name} with {_shown.repr(args)} {_shown.repr(kwargs)}, not one id"
    callbacks = {
        "success": job._success_callback_name,
        "failure": job._failure_callback_name,
        "stopped": job._stopped_callback_name,
    }
    named = {kind: name for kind, name in callbacks.items() if name}
    if named:
        return f"it names callbacks {named}"
    webhooks = getattr(job, "webhooks", None)  # rq 3
    if webhooks:
        return f"it names webhooks {[webhook.url for webhook in webhooks]}"
    if job._dependency_ids:
        return f"it depends on rq jobs {job._dependency_ids}"
    return None


class GradserveJob(Job):
    """rq's Job, made to import nothing but gradserve's job functions: its function is looked
    up only when allowed, its callbacks are never imported and its webhooks never sent."""

    @property
    def func(self) -> Any:
        reason = refusal(self)
        if reason:
            raise RefusedJob(f"rq job {self.id} refused: {reason}")
        return super().func

    @property
    def success_callback(self) -> None:
        return self._no_callback("success", self._success_callback_name)

    @property
    def failure_callback(self) -> None:
        return self._no_callback("failure", self._failure_callback_name)

    @property
    def stopped_callback(self) -> None:
        return self._no_callback("stopped", self._stopped_callback_name)

    def _no_callback(self, kind: str, name: str | None) -> None:
        if name:
            log.error("rq job %s: its %s callback %r is refused", self.id, kind, name)
        return None

    def send_webhooks(self, status: Any, *, exc_string: str | None = None) -> None:
        if getattr(self, "webhooks", None):
            urls = [webhook.url for webhook in self.webhooks]
            log.error("rq job %s: its webhooks %s are refused", self.id, urls)
