"""Everything gradserve keeps in Redis, and the one place its keys are spelled.

(Graph evaluations are kept by `service.graph_store`, with these same keys.)

A job is a hash (the source of truth: written in the same transaction as its enqueue),
indexed in sorted sets by creation time; its history is a list of JSON batches; its
latest checkpoint a string. A job's status changes only through `_UPDATE`, a Lua script
that checks the current status (and the attempt of the worker writing) first, so a
cancel and a finish cannot both win and a terminal status never changes again.
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
from typing import Any

import redis

from .errors import IdempotencyKeyReused, InvalidParameter
from .queue import Enqueue

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
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


# KEYS: job, history, checkpoint, model, all-jobs index, then one index per status.
# ARGV: job id, allowed statuses (space-separated), attempt ('' = any), new status
# ('' = unchanged), history batch, checkpoint, model ('' = none of each), channel to
# publish "cancel" on ('' = none), then field/value pairs for the job hash.
# Returns {1, previous status, attempt} or {0, current status ('' if no such job)}.
_UPDATE = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {0, ''} end
local allowed = false
for s in string.gmatch(ARGV[2], '%S+') do
  if s == status then allowed = true end
end
if not allowed then return {0, status} end
if ARGV[3] ~= '' and redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[3] then
  return {0, status}
end
if ARGV[4] ~= '' and ARGV[4] ~= status then
  local index = {STATUS_INDEX}
  local score = redis.call('ZSCORE', KEYS[5], ARGV[1])
  redis.call('ZREM', KEYS[index[status]], ARGV[1])
  redis.call('ZADD', KEYS[index[ARGV[4]]], score, ARGV[1])
  redis.call('HSET', KEYS[1], 'status', ARGV[4])
  if ARGV[4] == 'running' then redis.call('HINCRBY', KEYS[1], 'attempt', 1) end
end
if ARGV[5] ~= '' then redis.call('RPUSH', KEYS[2], ARGV[5]) end
if ARGV[6] ~= '' then redis.call('SET', KEYS[3], ARGV[6]) end
if ARGV[7] ~= '' then redis.call('SET', KEYS[4], ARGV[7]) end
if ARGV[8] ~= '' then redis.call('PUBLISH', ARGV[8], 'cancel') end
if #ARGV > 8 then redis.call('HSET', KEYS[1], unpack(ARGV, 9)) end
return {1, status, redis.call('HGET', KEYS[1], 'attempt')}
""".replace("STATUS_INDEX", ", ".join(f"{s} = {6 + i}" for i, s in enumerate(STATUSES)))


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
    """Tells a running job, without a round trip per step, that it was cancelled."""

    def __init__(self, pubsub: redis.client.PubSub) -> None:
        self._pubsub = pubsub
        self._cancelled = False

    def cancelled(self) -> bool:
        while not self._cancelled:
            message = self._pubsub.get_message(ignore_subscribe_messages=True, timeout=0.0)
            if message is None:
                break
            self._cancelled = message["type"] == "message"
        return self._cancelled


class Store:
    def __init__(self, connection: redis.Redis, prefix: str = "gradserve") -> None:
        self.redis = connection
        self.keys = Keys(prefix)
        self._update = connection.register_script(_UPDATE)

    def create_job(
        self,
        spec: Json,
        enqueue: Enqueue,
        idempotency: tuple[str, str, int] | None = None,
    ) -> tuple[Json, bool]:
        """Write a queued job and call `enqueue(pipeline, job_id)` in one transaction.

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
                    enqueue(pipe, job_id)
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

    def _change(
        self,
        job_id: str,
        allowed: tuple[str, ...],
        to: str = "",
        attempt: int | None = None,
        history: Json | None = None,
        checkpoint: Json | None = None,
        model: Json | None = None,
        notify_cancel: bool = False,
        **fields: Any,
    ) -> tuple[bool, str, int | None]:
        """Run _UPDATE: (done, the status before (or now, if refused), the attempt)."""
        keys = [
            self.keys.job(job_id),
            self.keys.history(job_id),
            self.keys.checkpoint(job_id),
            self.keys.model(model["id"]) if model else self.keys.model("-"),
            self.keys.jobs(),
            *(self.keys.jobs(s) for s in STATUSES),
        ]
        args = [
            job_id,
            " ".join(allowed),
            "" if attempt is None else str(attempt),
            to,
            _history_batch(history),
            dumps(checkpoint) if checkpoint else "",
            dumps(model) if model else "",
            self.keys.cancel_channel(job_id) if notify_cancel else "",
        ]
        for name, value in fields.items():
            args += [name, dumps(value)]
        done, status, *rest = self._update(keys=keys, args=args)
        return bool(done), status.decode(), int(rest[0]) if rest else None

    def mark_running(self, job_id: str) -> int | None:
        """Queued -> running; the attempt number (the fence of later writes) or None when
        the job is not queued (cancelled, or already taken)."""
        done, _, attempt = self._change(job_id, ("queued",), "running", started_at=now())
        return attempt if done else None

    def record_progress(
        self,
        job_id: str,
        attempt: int,
        history: Json,
        progress: Json,
        metrics: Json,
        checkpoint: Json | None = None,
    ) -> bool:
        """Append a history batch (and a checkpoint) while the job is still this attempt's
        to run; False once it is not (cancelled): the caller must stop."""
        done, _, _ = self._change(
            job_id,
            ("running",),
            attempt=attempt,
            history=history,
            checkpoint=checkpoint,
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
    ) -> bool:
        """Running -> succeeded, with the last history batch and the model."""
        done, _, _ = self._change(
            job_id,
            ("running",),
            "succeeded",
            attempt=attempt,
            history=history,
            model=model,
            progress=progress,
            metrics=metrics,
            model_id=model["id"],
            finished_at=now(),
        )
        return done

    def fail(
        self, job_id: str, attempt: int, history: Json, progress: Json, metrics: Json, error: Json
    ) -> bool:
        """Running -> failed, keeping the history so far."""
        done, _, _ = self._change(
            job_id,
            ("running",),
            "failed",
            attempt=attempt,
            history=history,
            progress=progress,
            metrics=metrics,
            error=error,
            finished_at=now(),
        )
        return done

    def cancel(self, job_id: str) -> tuple[bool, str]:
        """Queued or running -> cancelled (a running worker hears of it at its next step):
        (done, the status before, or the terminal status that stays)."""
        done, status, _ = self._change(
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

    def get_model(self, model_id: str) -> Json | None:
        if not ID_PATTERN.fullmatch(model_id):
            return None
        raw = self.redis.get(self.keys.model(model_id))
        return None if raw is None else json.loads(raw)


def _history_batch(history: Json | None) -> str:
    return dumps(history) if history and history["step"] else ""
