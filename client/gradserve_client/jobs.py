"""/v1/jobs: submit, read, list, follow (events stream, held GETs), cancel, delete."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from . import errors, sse
from .transport import Transport
from .waiting import wait_for

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
"""Statuses a job never leaves."""
STREAM_READ_TIMEOUT = 90.0
"""Seconds without a byte (keep-alives count) before a stream is taken for dropped."""


@dataclass(frozen=True)
class Event:
    """One event of a job's stream: `status` (data: the job resource) or `progress` (data:
    {"step": [...], "loss": [...], "accuracy": [...]}, id: its last step)."""

    event: str
    data: Any
    id: str | None = None


def _query(metadata: Mapping[str, str] | None, **params: Any) -> dict[str, Any]:
    query = {name: value for name, value in params.items() if value is not None}
    for key, value in (metadata or {}).items():
        query[f"metadata.{key}"] = value
    return query


def _unseen(event: Event, last_step: int | None) -> Event | None:
    """A progress event without the steps already yielded (a resume that overlaps)."""
    if last_step is None or event.event != "progress":
        return event
    keep = [i for i, step in enumerate(event.data["step"]) if step > last_step]
    if not keep:
        return None
    if len(keep) == len(event.data["step"]):
        return event
    data = {name: [values[i] for i in keep] for name, values in event.data.items()}
    return Event(event.event, data, event.id)


class Jobs:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def create(
        self,
        spec: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Submit a training job (an empty spec is micrograd's demo); the queued job. Each
        call sends an Idempotency-Key (a new one unless given), so a retried submit never
        makes two jobs."""
        key = idempotency_key or f"gradserve-client-{uuid.uuid4()}"
        return self._t.json(
            "POST", "/v1/jobs", json=dict(spec or {}), headers={"Idempotency-Key": key}
        )

    def get(self, job_id: str) -> dict[str, Any]:
        return self._t.json("GET", f"/v1/jobs/{job_id}")

    def list(
        self,
        *,
        status: str | None = None,
        metadata: Mapping[str, str] | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """One page of your jobs, newest first: {"items": [...], "next_cursor": ...}."""
        query = _query(metadata, status=status, limit=limit, cursor=cursor)
        return self._t.json("GET", "/v1/jobs", params=query)

    def list_all(
        self,
        *,
        status: str | None = None,
        metadata: Mapping[str, str] | None = None,
        limit: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every job that matches, newest first, following `next_cursor` page by page."""
        cursor = None
        while True:
            page = self.list(status=status, metadata=metadata, limit=limit, cursor=cursor)
            yield from page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a queued or running job (a finished one: Conflict)."""
        return self._t.json("POST", f"/v1/jobs/{job_id}/cancel")

    def delete(self, job_id: str) -> None:
        """Delete a job, its history and data (a running one is cancelled first)."""
        self._t.request("DELETE", f"/v1/jobs/{job_id}")

    def history(
        self, job_id: str, *, since: int | None = None, limit: int | None = None
    ) -> dict[str, Any]:
        """The steps recorded so far from `since` on: {"job_id", "step", "loss", "accuracy"},
        every page followed (`limit` is the page size)."""
        merged: dict[str, Any] = {"job_id": job_id, "step": [], "loss": [], "accuracy": []}
        while True:
            page = self.history_page(job_id, since=since, limit=limit)
            for name in ("step", "loss", "accuracy"):
                merged[name] += page[name]
            since = page.get("next_since")
            if since is None:
                return merged

    def history_page(
        self, job_id: str, *, since: int | None = None, limit: int | None = None
    ) -> dict[str, Any]:
        """One page of the history, with `next_since` (null: no more stored yet)."""
        query = _query(None, since=since, limit=limit)
        return self._t.json("GET", f"/v1/jobs/{job_id}/history", params=query)

    def data(self, job_id: str) -> dict[str, Any]:
        """The inline training data as submitted (NotFound for a generated data set)."""
        return self._t.json("GET", f"/v1/jobs/{job_id}/data")

    def webhooks(self, job_id: str) -> Any:
        """The job's webhook deliveries and their outcomes."""
        return self._t.json("GET", f"/v1/jobs/{job_id}/webhooks")

    def wait(self, job_id: str, timeout: float | None = None) -> dict[str, Any]:
        """The job once it is terminal (succeeded, failed or cancelled; a failure is not
        raised: look at `status` and `error`). Each GET asks the server to hold its answer
        until then (`Prefer: wait`), so a long job costs a request every half minute; a
        server that answers at once is asked again after a growing pause. WaitTimeout
        (holding the last state) when `timeout` seconds pass first."""
        return wait_for(self._t, f"/v1/jobs/{job_id}", TERMINAL, timeout)

    def stream(
        self, job_id: str, *, last_event_id: int | None = None, reconnects: int = 5
    ) -> Iterator[Event]:
        """The job's events as they happen (GET /v1/jobs/{id}/events), up to and including
        its terminal `status` event. A dropped connection is resumed with Last-Event-ID (the
        last step seen), so each step is yielded once; `reconnects` drops in a row with no
        event between them raise APIConnectionError."""
        last_step, drops = last_event_id, 0
        while True:
            headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
            if last_step is not None:
                headers["Last-Event-ID"] = str(last_step)
            response = self._t.request(
                "GET",
                f"/v1/jobs/{job_id}/events",
                headers=headers,
                stream=True,
                extra_timeout=STREAM_READ_TIMEOUT,
            )
            try:
                with response:
                    for raw in sse.parse(response.iter_content(chunk_size=None)):
                        event = _unseen(_decode(raw), last_step)
                        drops = 0
                        if event is None:
                            continue
                        if event.event == "progress" and event.data["step"]:
                            last_step = event.data["step"][-1]
                        yield event
                        if event.event == "status" and event.data.get("status") in TERMINAL:
                            return
            except requests.RequestException as exc:  # dropped mid-stream
                cause: Exception | None = exc
            else:
                cause = None  # ended before the terminal status: resume all the same
            drops += 1
            if drops > reconnects:
                raise errors.APIConnectionError(
                    f"the events stream of job {job_id} dropped {drops} times in a row: {cause}"
                )
            time.sleep(min(0.1 * 2**drops, 5))


def _decode(raw: sse.RawEvent) -> Event:
    try:
        data = json.loads(raw.data)
    except ValueError:
        data = raw.data
    if raw.event == "progress" and not isinstance(data, dict):
        raise errors.GradserveError(f"a progress event that is not an object: {raw.data[:200]}")
    return Event(raw.event, data, raw.id)
