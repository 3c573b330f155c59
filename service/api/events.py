"""A job's Server-Sent Events stream (GET /v1/jobs/{id}/events): `status` events (the job
resource; no id) on every status change seen, and `progress` events (the steps since the
last one, in the history's shape; the id is the last step they carry), at most one every
EVENTS_INTERVAL seconds while the job runs.

The order: the current status, then the stored steps (from Last-Event-ID + 1, else from
the start), then whatever comes, live. The last event is always the terminal status, after
every step: a job already finished sends its steps first and its status last. The job is
read before its history, so a terminal status read means the history read after it is whole.

A stream holds no Redis connection while it waits: it sleeps on the process's notifier
(api/notifier.py), and reads the job again on every wake and every RECHECK seconds."""

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..store import JobStore
from ..store.keys import Keys
from ..strictjson import dumps
from .notifier import Notifier

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
Json = dict[str, Any]


@dataclass(frozen=True)
class StreamSettings:
    retry_ms: int  # the reconnection delay suggested to the client (`retry:`)
    heartbeat: float  # seconds of silence after which a comment line is sent
    interval: float  # seconds at least between two progress events of a running job
    page: int  # steps at most in one progress event


def event(name: str, data: Json, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\ndata: {dumps(data)}\n\n"


def job_events(
    store: JobStore,
    notifier: Notifier,
    job_id: str,
    tenant: str,
    since: int,
    settings: StreamSettings,
    resource: Callable[[Json], Json],
) -> Iterator[str]:
    """The stream's text, event by event; `resource(job)` is the job as the API shows it.
    Ends after the terminal status (or when the job is deleted)."""
    yield f"retry: {settings.retry_ms}\n\n"
    sent_status: str | None = None
    next_step, last_progress, last_write = since, 0.0, time.monotonic()
    with notifier.watch(Keys.changed_job(job_id)) as changed:
        while True:
            job = store.get_job(job_id, tenant=tenant)
            if job is None:
                return  # deleted (or expired) meanwhile
            status = job["status"]
            finished = status in TERMINAL
            if status != sent_status and not finished:
                yield event("status", resource(job))
                sent_status, last_write = status, time.monotonic()
            wait = notifier.recheck
            due = last_progress + settings.interval - time.monotonic()
            if finished or (due <= 0 and job["progress"]["step"] > next_step):
                page = store.history(job_id, next_step, settings.page, tenant=tenant)
                if page is None:
                    return
                if page["step"]:
                    steps = {name: page[name] for name in ("step", "loss", "accuracy")}
                    yield event("progress", steps, steps["step"][-1])
                    next_step = steps["step"][-1] + 1
                    last_progress = last_write = time.monotonic()
                if page["next_since"] is not None:
                    continue  # more is stored: send it at once
                if finished:
                    yield event("status", resource(job))
                    return
            elif job["progress"]["step"] > next_step:
                wait = due  # steps are waiting for the interval to pass
            silence = time.monotonic() - last_write
            if silence >= settings.heartbeat:
                yield ": keepalive\n\n"
                last_write, silence = time.monotonic(), 0.0
            changed.wait(max(0.0, min(wait, settings.heartbeat - silence)))
            changed.clear()
