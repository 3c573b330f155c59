"""Everything gradserve keeps in Redis, and the one place its keys are spelled.

(Graph evaluations are kept by `service.graph_store`, with these same keys.)

A job is a hash (the source of truth: written in the same transaction as its enqueue),
indexed in sorted sets by creation time; its history is a list of JSON batches; its
latest checkpoint a string; while it runs, a lease. A job's status changes only through
the Lua scripts of `service.scripts`, which check the current status (and the run token
of the worker writing) first, so a cancel and a finish cannot both win, a terminal status
never changes again, and a worker that lost its job can write nothing more for it.
"""

import base64
import binascii
import hashlib
import json
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, NamedTuple

import redis

from . import scripts, settings
from .errors import IdempotencyKeyReused, InvalidParameter
from .queue import Enqueue
from .scripts import STATUSES

ID_PATTERN = re.compile(r"[0-9a-f]{32}")
JSON_FIELDS = (
    "created_at",
    "started_at",
    "finished_at",
    "progress",
    "metrics",
    "model_id",
    "error",
    "spec",
)

Json = dict[str, Any]


class Keys:
    """Redis key names (after rq's `Job.key_for`): nothing else builds them."""

    def __init__(self, prefix: str = "gradserve") -> None:
        self.prefix = prefix

    def job(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    def history(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}:history"

    def checkpoint(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}:checkpoint"

    def cancel_channel(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}:cancel"

    def lease(self, job_id: str) -> str:
        """A running job's lease: `<attempt> <run token> <owner>`, with a time to live."""
        return f"{self.prefix}:job:{job_id}:lease"

    def stranded(self, job_id: str) -> str:
        """When a queued job's rq job was first seen missing from the queue."""
        return f"{self.prefix}:job:{job_id}:stranded"

    def reaper_turn(self) -> str:
        """Held by the worker whose reaper makes the current pass."""
        return f"{self.prefix}:reaper"

    def jobs(self, status: str | None = None) -> str:
        """The index of all jobs, or of the jobs in one status, scored by creation time."""
        return f"{self.prefix}:jobs" if status is None else f"{self.prefix}:jobs:{status}"

    def model(self, model_id: str) -> str:
        return f"{self.prefix}:model:{model_id}"

    def graph(self, graph_id: str) -> str:
        return f"{self.prefix}:graph:{graph_id}"

    def graph_doc(self, graph_id: str) -> str:
        return f"{self.prefix}:graph:{graph_id}:doc"

    def idempotency(self, key: str) -> str:
        digest = hashlib.sha256(key.encode()).hexdigest()  # any header value, a fixed length
        return f"{self.prefix}:idempotency:{digest}"


def new_id() -> str:
    return uuid.uuid4().hex


def now() -> str:
    """The time as RFC 3339 in UTC, to the millisecond."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dumps(value: Any) -> str:
    """Strict JSON: a NaN or an infinity is a bug to raise about, never a token to store."""
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


def encode_cursor(score: float, job_id: str) -> str:
    return base64.urlsafe_b64encode(f"{score:.0f}:{job_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        score, job_id = raw.split(":")
        if ID_PATTERN.fullmatch(job_id):
            return int(score), job_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        pass
    raise InvalidParameter("cursor", "not a cursor this API gave out")


class CancelListener:
    """Tells a running job, without a round trip per step, that it was cancelled.

    While Redis is unreachable it says "not cancelled" and looks again a second later (a
    cancel it misses meanwhile still stops the job: its next write is refused)."""

    RETRY_AFTER = 1.0  # seconds: a broken subscription is not retried at every step

    def __init__(self, pubsub: redis.client.PubSub) -> None:
        self._pubsub = pubsub
        self._cancelled = False
        self._quiet_until = 0.0

    def cancelled(self) -> bool:
        if self._cancelled or time.monotonic() < self._quiet_until:
            return self._cancelled
        try:
            while not self._cancelled:
                message = self._pubsub.get_message(ignore_subscribe_messages=True, timeout=0.0)
                if message is None:
                    break
                self._cancelled = message["type"] == "message"
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            self._quiet_until = time.monotonic() + self.RETRY_AFTER
        return self._cancelled


class HistoryMismatch(Exception):
    """A history batch that does not continue the stored history: `recorded` steps are stored.

    Fewer than the batch assumes (`behind`): Redis lost writes it had acknowledged (a crash
    between two syncs of its append-only file); the run must start again from the stored
    checkpoint. More: an earlier write the writer thought failed had been applied."""

    def __init__(self, recorded: int, behind: bool) -> None:
        super().__init__(f"the stored history has {recorded} steps")
        self.recorded, self.behind = recorded, behind


class Run(NamedTuple):
    """A run of a job, as `Store.start` begins it."""

    attempt: int  # runs of this job started so far, this one included
    token: str  # this run's own mark: every write of the run is fenced on it
    spec: Json
    checkpoint: Json | None  # where to resume (None: from the start)
    trained_seconds: float  # training time the checkpoint stands for


class Store:
    def __init__(self, connection: redis.Redis, prefix: str = "gradserve") -> None:
        self.redis = connection
        self.keys = Keys(prefix)
        self._update = connection.register_script(scripts.UPDATE)
        self._start = connection.register_script(scripts.START)
        self._renew = connection.register_script(scripts.RENEW)
        self._stranded = connection.register_script(scripts.STRANDED)

    def create_job(
        self,
        spec: Json,
        enqueue: Enqueue,
        idempotency: tuple[str, str, int] | None = None,
    ) -> tuple[Json, bool]:
        """Write a queued job and call `enqueue(pipeline, job_id)` in one transaction (it
        returns the rq job id that may start the job, or None for any).

        `idempotency` = (key, fingerprint of the request, seconds to remember it): a key
        seen before with the same fingerprint gives back that job (and True); with
        another, IdempotencyKeyReused.
        """
        job_id, created = new_id(), time.time_ns() // 1000
        record = {
            "id": job_id,
            "status": "queued",
            "created_at": now(),
            "started_at": None,
            "finished_at": None,
            "progress": {"step": 0, "steps": spec["steps"]},
            "metrics": {"loss": None, "accuracy": None},
            "model_id": None,
            "error": None,
            "spec": spec,
        }
        fields = {name: dumps(record[name]) for name in JSON_FIELDS}
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    if idempotency is not None:
                        key, fingerprint, ttl = idempotency
                        pipe.watch(self.keys.idempotency(key))
                        seen = pipe.get(self.keys.idempotency(key))
                        if seen is not None:
                            pipe.unwatch()
                            return self._replay(seen.decode(), fingerprint), True
                    pipe.multi()
                    pipe.hset(
                        self.keys.job(job_id),
                        mapping={"id": job_id, "status": "queued", "attempt": 0, **fields},
                    )
                    pipe.zadd(self.keys.jobs(), {job_id: created})
                    pipe.zadd(self.keys.jobs("queued"), {job_id: created})
                    if idempotency is not None:
                        pipe.set(self.keys.idempotency(key), f"{fingerprint} {job_id}", ex=ttl)
                    ticket = enqueue(pipe, job_id)
                    if ticket:  # only this rq job may start it (see `start`)
                        pipe.hset(self.keys.job(job_id), "ticket", ticket)
                    pipe.execute()
                    return record, False
                except redis.WatchError:
                    continue  # the same key was used at the same moment: read it again

    def _replay(self, seen: str, fingerprint: str) -> Json:
        seen_fingerprint, job_id = seen.split(" ")
        job = self.get_job(job_id)
        if seen_fingerprint != fingerprint or job is None:
            raise IdempotencyKeyReused()
        return job

    def get_job(self, job_id: str) -> Json | None:
        if not ID_PATTERN.fullmatch(job_id):
            return None
        return self._decode_job(self.redis.hgetall(self.keys.job(job_id)))

    @staticmethod
    def _decode_job(raw: dict[bytes, bytes]) -> Json | None:
        if not raw:
            return None
        job = {"id": raw[b"id"].decode(), "status": raw[b"status"].decode()}
        job.update((name, json.loads(raw[name.encode()])) for name in JSON_FIELDS)
        job["attempt"] = int(raw[b"attempt"])
        return job

    def list_jobs(
        self, limit: int, cursor: str | None = None, status: str | None = None
    ) -> tuple[list[Json], str | None]:
        """A page of jobs, newest first, and the cursor of the next page (None at the end).

        The cursor is the (creation time, id) of the page's last job: the next page starts
        right after it even as newer jobs arrive."""
        index = self.keys.jobs(status)
        entries: list[tuple[bytes, float]] = []
        if cursor is None:
            entries = self.redis.zrevrange(index, 0, limit, withscores=True)
        else:
            score, after = decode_cursor(cursor)
            # Ties in score are ordered by id, descending, as ZREVRANGE gives them.
            ties = self.redis.zrangebyscore(index, score, score, withscores=True)
            entries = sorted((e for e in ties if e[0].decode() < after), reverse=True)
            if len(entries) <= limit:
                entries += self.redis.zrevrangebyscore(
                    index,
                    f"({score}",
                    "-inf",
                    start=0,
                    num=limit + 1 - len(entries),
                    withscores=True,
                )
        page, more = entries[:limit], len(entries) > limit
        with self.redis.pipeline(transaction=False) as pipe:
            for member, _ in page:
                pipe.hgetall(self.keys.job(member.decode()))
            found = map(self._decode_job, pipe.execute())
        # A job may have moved on (or out of `status`) since the index was read.
        jobs = [job for job in found if job and (status is None or job["status"] == status)]
        last = page[-1] if page and more else None
        return jobs, (encode_cursor(last[1], last[0].decode()) if last else None)

    def job_keys(self, job_id: str, model_id: str = "-") -> list[str]:
        """The KEYS every script of service.scripts takes."""
        k = self.keys
        return [
            k.job(job_id),
            k.history(job_id),
            k.checkpoint(job_id),
            k.model(model_id),
            k.lease(job_id),
            k.stranded(job_id),
            k.jobs(),
            *(k.jobs(s) for s in STATUSES),
        ]

    def change(
        self,
        job_id: str,
        allowed: tuple[str, ...],
        to: str = "",
        attempt: int | None = None,
        history: Json | None = None,
        checkpoint: Json | None = None,
        model: Json | None = None,
        notify_cancel: bool = False,
        *,
        token: str | None = None,
        checked: bool = False,
        raw: dict[str, Any] | None = None,
        client: redis.client.Pipeline | None = None,
        **fields: Any,
    ) -> tuple[bool, str, int | None]:
        """Run scripts.UPDATE: (done, the status before (or now, if refused), the attempt).

        Fenced on `allowed` statuses, and on `attempt` and the run's `token` when given;
        `checked`: the history batch must continue the stored history exactly (else
        HistoryMismatch). `fields` are stored as JSON, `raw` as they are. With `client` (a
        pipeline in a transaction) the call is only queued: (True, "", None)."""
        steps = history["step"] if history else []
        args = [
            job_id,
            " ".join(allowed),
            "" if attempt is None else str(attempt),
            token or "",
            to,
            _history_batch(history),
            str(steps[0]) if checked and steps else "",
            str(len(steps)),
            dumps(checkpoint) if checkpoint else "",
            dumps(model) if model else "",
            self.keys.cancel_channel(job_id) if notify_cancel else "",
        ]
        for name, value in fields.items():
            args += [name, dumps(value)]
        for name, value in (raw or {}).items():
            args += [name, str(value)]
        keys = self.job_keys(job_id, model["id"] if model else "-")
        if client is not None:
            self._update(keys=keys, args=args, client=client)
            return True, "", None
        done, status, *rest = self._update(keys=keys, args=args)
        if not done and rest:
            raise HistoryMismatch(int(rest[1]), rest[0] == b"behind")
        return bool(done), status.decode(), int(rest[0]) if rest else None

    def start(
        self,
        job_id: str,
        ticket: str | None = None,
        owner: str = "",
        lease_ttl: float = settings.LEASE_TTL,
        token: str | None = None,
    ) -> Run | None:
        """Queued -> running for a new run, which takes the job's lease (for `lease_ttl`
        seconds, in the name of `owner`): the run, or None when the job is not queued (or
        `ticket`, the rq job starting it, is not the job's own any more). The same `token`
        again gives the same run back (a retried start)."""
        token = token or new_id()[:16]
        reply = self._start(
            keys=self.job_keys(job_id),
            args=[job_id, ticket or "", token, int(lease_ttl * 1000), owner, dumps(now())],
        )
        if not reply[0]:
            return None
        _, attempt, spec, checkpoint, seconds = reply
        return Run(
            int(attempt),
            token,
            json.loads(spec),
            json.loads(checkpoint) if checkpoint else None,
            float(seconds),
        )

    def renew_lease(self, job_id: str, run: Run, owner: str, lease_ttl: float) -> bool:
        """Renew the run's lease (take it again if it lapsed); False once the job is no
        longer this run's (cancelled, or handed to another run)."""
        value = f"{run.attempt} {run.token} {owner}"
        keys = [self.keys.job(job_id), self.keys.lease(job_id)]
        return bool(self._renew(keys=keys, args=[run.token, int(lease_ttl * 1000), value]))

    def record_progress(
        self,
        job_id: str,
        attempt: int,
        history: Json,
        progress: Json,
        metrics: Json,
        checkpoint: Json | None = None,
        *,
        token: str | None = None,
        checked: bool = False,
        trained_seconds: float | None = None,
    ) -> bool:
        """Append a history batch (and a checkpoint) while the job is still this attempt's
        to run; False once it is not (cancelled): the caller must stop."""
        raw = {} if trained_seconds is None else {"trained_seconds": trained_seconds}
        done, _, _ = self.change(
            job_id,
            ("running",),
            attempt=attempt,
            history=history,
            checkpoint=checkpoint,
            token=token,
            checked=checked,
            raw=raw,
            progress=progress,
            metrics=metrics,
        )
        return done

    def complete(
        self,
        job_id: str,
        attempt: int,
        history: Json,
        progress: Json,
        metrics: Json,
        model: Json,
        *,
        token: str | None = None,
        checked: bool = False,
    ) -> bool:
        """Running -> succeeded, with the last history batch and the model."""
        done, _, _ = self.change(
            job_id,
            ("running",),
            "succeeded",
            attempt=attempt,
            history=history,
            model=model,
            token=token,
            checked=checked,
            progress=progress,
            metrics=metrics,
            model_id=model["id"],
            finished_at=now(),
        )
        return done

    def fail(
        self,
        job_id: str,
        attempt: int,
        history: Json,
        progress: Json,
        metrics: Json,
        error: Json,
        *,
        token: str | None = None,
        checked: bool = False,
    ) -> bool:
        """Running -> failed, keeping the history so far."""
        done, _, _ = self.change(
            job_id,
            ("running",),
            "failed",
            attempt=attempt,
            history=history,
            token=token,
            checked=checked,
            progress=progress,
            metrics=metrics,
            error=error,
            finished_at=now(),
        )
        return done

    def cancel(self, job_id: str) -> tuple[bool, str]:
        """Queued or running -> cancelled (a running worker hears of it at its next step):
        (done, the status before, or the terminal status that stays)."""
        done, status, _ = self.change(
            job_id, ("queued", "running"), "cancelled", notify_cancel=True, finished_at=now()
        )
        return done, status

    @contextmanager
    def cancel_listener(self, job_id: str) -> Iterator[CancelListener]:
        """Listen for a cancel of this job; subscribe before checking the status."""
        pubsub = self.redis.pubsub()
        try:
            pubsub.subscribe(self.keys.cancel_channel(job_id))
            yield CancelListener(pubsub)
        finally:
            pubsub.close()

    def history(self, job_id: str, since: int = 0) -> Json:
        steps: list[int] = []
        losses: list[float] = []
        accuracies: list[float | None] = []
        for raw in self.redis.lrange(self.keys.history(job_id), 0, -1):
            batch = json.loads(raw)
            if batch["step"] and batch["step"][-1] >= since:
                first = next(i for i, step in enumerate(batch["step"]) if step >= since)
                steps += batch["step"][first:]
                losses += batch["loss"][first:]
                accuracies += batch["accuracy"][first:]
        return {"job_id": job_id, "step": steps, "loss": losses, "accuracy": accuracies}

    def checkpoint(self, job_id: str) -> Json | None:
        raw = self.redis.get(self.keys.checkpoint(job_id))
        return None if raw is None else json.loads(raw)

    def running_without_lease(self) -> list[str]:
        """Running jobs whose lease has lapsed: their worker is gone (or cut off)."""
        running = [m.decode() for m in self.redis.zrange(self.keys.jobs("running"), 0, -1)]
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id in running:
                pipe.exists(self.keys.lease(job_id))
            leased = pipe.execute()
        return [job_id for job_id, held in zip(running, leased, strict=True) if not held]

    def queued_tickets(self) -> list[tuple[str, str | None]]:
        """(job id, the rq job id that may start it) of every queued job."""
        queued = [m.decode() for m in self.redis.zrange(self.keys.jobs("queued"), 0, -1)]
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id in queued:
                pipe.hget(self.keys.job(job_id), "ticket")
            tickets = pipe.execute()
        return [(j, t.decode() if t else None) for j, t in zip(queued, tickets, strict=True)]

    def stranded(self, job_id: str, ticket: str, grace: float) -> bool:
        """Has the job stayed queued on `ticket` for `grace` seconds since a reaper first saw
        that rq job missing from the queue? (Call each time it is seen missing.)"""
        keys = [self.keys.job(job_id), self.keys.stranded(job_id)]
        return bool(self._stranded(keys=keys, args=[ticket, int(grace * 1000)]))

    def take_reaper_turn(self, seconds: float) -> bool:
        """True for one caller per `seconds` across all workers."""
        return bool(self.redis.set(self.keys.reaper_turn(), "1", nx=True, px=int(seconds * 1000)))

    def get_model(self, model_id: str) -> Json | None:
        if not ID_PATTERN.fullmatch(model_id):
            return None
        raw = self.redis.get(self.keys.model(model_id))
        return None if raw is None else json.loads(raw)


def _history_batch(history: Json | None) -> str:
    return dumps(history) if history and history["step"] else ""
