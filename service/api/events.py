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

import redis

from ..store import JobStore
from ..store.keys import Keys
from ..strictjson import dumps
from .notifier import Notifier
from .shared_reads import SharedReads

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


class _Follower:
    """Where one stream stands: the status it sent, the next step to send, and when."""

    def __init__(self, since: int, resource: Callable[[Json], Json]) -> None:
        self.resource = resource  # the job as the API shows it
        self.sent_status: str | None = None
        self.next_step = since
        self.last_progress = 0.0
        self.finished = False


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
    Ends after the terminal status (or when the job is deleted). While Redis is
    unreachable it keeps the client with heartbeats and reads again every RECHECK seconds."""
    yield f"retry: {settings.retry_ms}\n\n"
    follower, last_write = _Follower(since, resource), time.monotonic()
    with notifier.watch(Keys.changed_job(job_id)) as changed:
        while True:
            try:
                texts, wait = _read(store, job_id, tenant, follower, settings)
            except redis.RedisError:
                texts, wait = [], notifier.recheck
            if texts:
                yield "".join(texts)
                last_write = time.monotonic()
            if follower.finished:
                return
            if wait == 0:
                continue
            wait = min(wait, notifier.recheck)
            silence = time.monotonic() - last_write
            if silence >= settings.heartbeat:
                yield ": keepalive\n\n"
                last_write, silence = time.monotonic(), 0.0
            changed.wait(max(0.0, min(wait, settings.heartbeat - silence)))
            changed.clear()


SHARED = SharedReads()
"""This process's reads shared by the streams of a job (api/shared_reads.py)."""


def _progress(store: JobStore, job_id: str, since: int, page: int, tenant: str) -> Json | None:
    """The progress event of the steps stored from `since` (at most `page`), read and
    encoded once for every stream of the job at that step: {"text", "last", "more"}
    (text None: no steps yet); None if the job is gone."""
    found = store.history(job_id, since, page, tenant=tenant)
    if found is None:
        return None
    more = found["next_since"] is not None
    if not found["step"]:
        return {"text": None, "last": None, "more": more}
    steps = {name: found[name] for name in ("step", "loss", "accuracy")}
    last = steps["step"][-1]
    return {"text": event("progress", steps, last), "last": last, "more": more}


def _read(
    store: JobStore, job_id: str, tenant: str, follower: _Follower, settings: StreamSettings
) -> tuple[list[str], float]:
    """The events to send now, and how long to wait before reading again (0: at once,
    more is stored). Sets `follower.finished` when the stream must end."""
    woke = time.monotonic()
    job, read_at = SHARED.read(
        ("job", job_id, tenant), woke, lambda: store.get_job(job_id, tenant=tenant)
    )
    if job is None:  # deleted (or expired) meanwhile
        follower.finished = True
        return [], 0
    texts, status = [], job["status"]
    finished = status in TERMINAL
    if status != follower.sent_status and not finished:
        texts.append(event("status", follower.resource(job)))
        follower.sent_status = status
    stored = job["progress"]["step"] > follower.next_step
    due = follower.last_progress + settings.interval - time.monotonic()
    if not finished and not (stored and due <= 0):
        return texts, due if stored else float("inf")
    since = follower.next_step
    progress, _ = SHARED.read(  # read after the job was: a terminal status has every step
        ("history", job_id, tenant, since),
        read_at,
        lambda: _progress(store, job_id, since, settings.page, tenant),
    )
    if progress is None:
        follower.finished = True
        return texts, 0
    if progress["text"] is not None:
        texts.append(progress["text"])
        follower.next_step = progress["last"] + 1
        follower.last_progress = time.monotonic()
    if progress["more"]:
        return texts, 0  # more is stored: send it at once
    if finished:
        texts.append(event("status", follower.resource(job)))
        follower.finished = True
    return texts, float("inf")
