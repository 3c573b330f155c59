"""Training jobs in Redis: a job is a hash (the source of truth, written in the same
transaction as its enqueue), indexed in sorted sets by creation time (every job's, and its
tenant's own); its history a list of JSON batches; its latest checkpoint a string (binary,
store.checkpoint); its inline data, if any, a string of its own (the hash holds a summary);
while it runs, a lease; its model, once it succeeded, a hash of the document and the tenant.
A finished job expires with all of these and its model after its retention
(`scripts.UPDATE`); the reaper then sweeps the indexes, its tenant's too
(`service.store.retention`).

A job, and the model it trains, belong to the tenant that submitted it: every read, delete
and cancel the API makes names the tenant, and another tenant's job or model reads as no
job at all.

A job's status changes only through the Lua scripts of `service.store.scripts`, which check
the current status (and the token of the run writing) first, so a cancel and a finish
cannot both win, a terminal status never changes again, and a run that lost its job can
write nothing more for it.
"""

import json
import time
from contextlib import AbstractContextManager
from typing import NamedTuple

import redis

from .. import settings
from ..errors import IdempotencyKeyReused, TooManyActiveJobs
from ..strictjson import dumps, fast_loads
from . import checkpoint as checkpoints
from . import scripts
from .cancel import CancelListener, listen
from .changes import Change, Json, Report
from .cursor import decode_cursor, encode_cursor
from .full import refused_when_full
from .history import HistoryMismatch, join_batches
from .ids import ID_PATTERN, new_id, now
from .jobdata import canonical, summary
from .keys import Keys
from .queue import Enqueue

ACTIVE = ("queued", "running")
"""The statuses MAX_ACTIVE_JOBS caps, together."""

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


class Run(NamedTuple):
    """A run of a job, as `JobStore.start` begins it."""

    attempt: int  # runs of this job started so far, this one included
    token: str  # this run's own mark: every write of the run is fenced on it
    spec: Json
    checkpoint: Json | None  # where to resume (None: from the start)
    trained_seconds: float  # training time the checkpoint stands for


def retention_ms(days: float) -> int:
    """RETENTION_DAYS as the milliseconds Redis takes (at least 1)."""
    return max(1, round(days * 86_400_000))


class JobStore:
    def __init__(
        self,
        connection: redis.Redis,
        prefix: str = "gradserve",
        retention_days: float = settings.RETENTION_DAYS,
    ) -> None:
        self.redis = connection
        self.keys = Keys(prefix)
        self.scripts = scripts.register(connection)
        self.retention_ms = retention_ms(retention_days)
        """Given to each job created here; jobs keep their own (and older ones without one
        get this when they finish)."""

    # -- the API's side: create, read, list, cancel -----------------------------------------

    def create_job(
        self,
        spec: Json,
        enqueue: Enqueue,
        idempotency: tuple[str, str, int] | None = None,
        inline: bytes | None = None,
        *,
        tenant: str,
        max_active: int | None = None,
    ) -> tuple[Json, bool]:
        """Write `tenant`'s queued job and call `enqueue(pipeline, job_id)` in one
        transaction (it returns the rq job id that may start the job, or None for any).

        `idempotency` = (key, fingerprint of the request, seconds to remember it): a key
        the tenant used before with the same fingerprint gives back that job (and True);
        with another, IdempotencyKeyReused. A key whose job is gone (deleted, expired) is
        forgotten: a new job is made.

        Inline data is stored under a key of its own as its canonical text, and the
        record's spec holds its summary: `inline` is that text when spec["data"] is the
        summary already (jobdata.summary), else both are made from spec["data"].

        With `max_active`, a tenant that has that many jobs queued or running gets
        TooManyActiveJobs instead (a replay is still given back). The count is read under
        WATCH of its two indexes, so submissions at the same moment never overshoot it.
        """
        job_id, created = new_id(), time.time_ns() // 1000
        spec = dict(spec)
        metadata = spec.pop("metadata", None) or {}  # the job's own field, not training's
        if "data" in spec and inline is None:
            inline = canonical(spec["data"])
            spec = {**spec, "data": summary(spec["data"], inline)}
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
            "metadata": metadata,
            "spec": spec,
        }
        fields = {name: dumps(record[name]) for name in (*JSON_FIELDS, "metadata")}
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    if idempotency is not None:
                        key, fingerprint, ttl = idempotency
                        pipe.watch(self.keys.idempotency(tenant, key))
                        seen = pipe.get(self.keys.idempotency(tenant, key))
                        replayed = seen and self._replay(pipe, seen.decode(), fingerprint, tenant)
                        if replayed:
                            pipe.unwatch()
                            return replayed, True
                    if max_active is not None:
                        active = self._count_active(pipe, tenant)
                        if active >= max_active:
                            pipe.unwatch()
                            raise TooManyActiveJobs(active, max_active)
                    pipe.multi()
                    pipe.hset(
                        self.keys.job(job_id),
                        mapping={
                            "id": job_id,
                            "status": "queued",
                            "attempt": 0,
                            "tenant": tenant,
                            "tenant_jobs": self.keys.tenant_jobs(tenant),
                            "retention_ms": self.retention_ms,
                            **fields,
                        },
                    )
                    if inline is not None:
                        pipe.set(self.keys.data(job_id), inline)
                    for status in (None, "queued"):  # every job's indexes, the tenant's
                        pipe.zadd(self.keys.jobs(status), {job_id: created})
                        pipe.zadd(self.keys.tenant_jobs(tenant, status), {job_id: created})
                    if idempotency is not None:
                        pipe.set(
                            self.keys.idempotency(tenant, key), f"{fingerprint} {job_id}", ex=ttl
                        )
                    ticket = enqueue(pipe, job_id)
                    if ticket:  # only this rq job may start it (see `start`)
                        pipe.hset(self.keys.job(job_id), "ticket", ticket)
                    pipe.execute()
                    return record, False
                except redis.WatchError:
                    continue  # the same key was used, or a job came or went: read it again

    def _count_active(self, pipe: redis.client.Pipeline, tenant: str) -> int:
        """The tenant's queued and running jobs, watched: any change to either index
        before the transaction runs makes it fail (WatchError), to be counted again."""
        indexes = [self.keys.tenant_jobs(tenant, status) for status in ACTIVE]
        pipe.watch(*indexes)
        return sum(pipe.zcard(index) for index in indexes)

    def _replay(
        self, pipe: redis.client.Pipeline, seen: str, fingerprint: str, tenant: str
    ) -> Json | None:
        """The job a tenant's Idempotency-Key made (None if it is gone: the key is made
        anew)."""
        seen_fingerprint, job_id = seen.split(" ")
        pipe.watch(self.keys.job(job_id))  # deleted meanwhile: look again
        job = self._decode_job(pipe.hgetall(self.keys.job(job_id)), tenant)
        if job is not None and seen_fingerprint != fingerprint:
            raise IdempotencyKeyReused()
        return job

    def get_job(
        self, job_id: str, *, tenant: str, record: dict[bytes, bytes] | None = None
    ) -> Json | None:
        """The job, if it is `tenant`'s; None if there is no such job or it is another
        tenant's (the same answer: the API does not reveal that another's exists).
        `record`: the job's hash as already read at `record_key(job_id)` (the rate
        limiter's call reads it for a polled job), else it is read here."""
        if not ID_PATTERN.fullmatch(job_id):
            return None
        if record is None:
            record = self.redis.hgetall(self.keys.job(job_id))
        return self._decode_job(record, tenant)

    def record_key(self, job_id: str) -> str | None:
        """Where a job's hash is, for a caller that reads it with other work (None for an
        id that is no job's)."""
        return self.keys.job(job_id) if ID_PATTERN.fullmatch(job_id) else None

    @staticmethod
    def _decode_job(raw: dict[bytes, bytes], tenant: str) -> Json | None:
        if not raw or raw.get(b"tenant", b"").decode() != tenant:
            return None
        job = {"id": raw[b"id"].decode(), "status": raw[b"status"].decode()}
        job.update((name, fast_loads(raw[name.encode()])) for name in JSON_FIELDS)
        job["attempt"] = int(raw[b"attempt"])
        job["metadata"] = json.loads(raw.get(b"metadata", b"{}"))  # none before metadata
        data = job["spec"].get("data")
        if data is not None and "x" in data:  # a record from before data had its own key
            job["spec"]["data"] = summary(data, canonical(data))
        return job

    def list_jobs(
        self,
        limit: int,
        cursor: str | None = None,
        status: str | None = None,
        *,
        tenant: str,
        metadata: list[tuple[str, str]] | None = None,
        scan: int = settings.LIST_SCAN_LIMIT,
    ) -> tuple[list[Json], str | None]:
        """A page of `tenant`'s jobs, newest first, and the cursor of the next page (None at
        the end).

        The cursor is the (creation time, id) of the page's last job: the next page starts
        right after it even as newer jobs arrive.

        With `metadata` (key, value) pairs, only the jobs whose metadata has them all; the
        page then looks at `scan` jobs at most, and may hold fewer than `limit` (even none)
        with a cursor to go on from where it stopped."""
        index = self.keys.tenant_jobs(tenant, status)
        if metadata:
            page, next_entry = self._filtered(index, limit, cursor, status, metadata, scan)
        else:
            entries = self._entries_after(index, cursor, limit + 1)
            page, more = entries[:limit], len(entries) > limit
            next_entry = page[-1] if page and more else None
        with self.redis.pipeline(transaction=False) as pipe:
            for member, _ in page:
                pipe.hgetall(self.keys.job(member.decode()))
            found = (self._decode_job(raw, tenant) for raw in pipe.execute())
        # A job may have moved on (or out of `status`) since the index was read.
        jobs = [job for job in found if job and (status is None or job["status"] == status)]
        cursor = encode_cursor(next_entry[1], next_entry[0].decode()) if next_entry else None
        return jobs, cursor

    def _entries_after(
        self, index: str, cursor: str | None, count: int
    ) -> list[tuple[bytes, float]]:
        """Up to `count` (id, score) of an index, newest first, after `cursor`."""
        if cursor is None:
            return self.redis.zrevrange(index, 0, count - 1, withscores=True)
        score, after = decode_cursor(cursor)
        # Ties in score are ordered by id, descending, as ZREVRANGE gives them.
        ties = self.redis.zrangebyscore(index, score, score, withscores=True)
        entries = sorted((e for e in ties if e[0].decode() < after), reverse=True)[:count]
        if len(entries) < count:
            entries += self.redis.zrevrangebyscore(
                index, f"({score}", "-inf", start=0, num=count - len(entries), withscores=True
            )
        return entries

    def _filtered(
        self,
        index: str,
        limit: int,
        cursor: str | None,
        status: str | None,
        metadata: list[tuple[str, str]],
        scan: int,
    ) -> tuple[list[tuple[bytes, float]], tuple[bytes, float] | None]:
        """The entries of a page of jobs carrying every (key, value) of `metadata`, from at
        most `scan` entries after `cursor`; and the entry the next page starts after (None:
        the index ends here)."""
        entries = self._entries_after(index, cursor, scan + 1)
        looked, more = entries[:scan], len(entries) > scan
        with self.redis.pipeline(transaction=False) as pipe:
            for member, _ in looked:
                pipe.hmget(self.keys.job(member.decode()), "status", "metadata")
            fields = pipe.execute()
        matches = []
        for entry, (current, stored) in zip(looked, fields, strict=True):
            if current is None or (status is not None and current.decode() != status):
                continue
            carried = json.loads(stored) if stored else {}
            if all(carried.get(key) == value for key, value in metadata):
                matches.append(entry)
                if len(matches) > limit:
                    return matches[:limit], matches[limit - 1]
        return matches, (looked[-1] if more and looked else None)

    def cancel(self, job_id: str, *, tenant: str) -> tuple[bool, str]:
        """Queued or running -> cancelled (a running worker hears of it at its next step):
        (done, the status before, or the terminal status that stays; '' if there is no such
        job of `tenant`'s)."""
        if not ID_PATTERN.fullmatch(job_id):
            return False, ""
        change = Change(
            ("queued", "running"),
            to="cancelled",
            tenant=tenant,
            publish_cancel=True,
            fields={"finished_at": now()},
        )
        return self.apply(job_id, change)

    def history(
        self, job_id: str, since: int = 0, limit: int | None = None, *, tenant: str
    ) -> Json | None:
        """The steps from `since` on: all of them, or at most `limit`, read from the batches
        that hold them only; `next_since` is where the next page starts (None: nothing
        more is stored yet). None if it is no job of `tenant`'s."""
        if not ID_PATTERN.fullmatch(job_id) or not self._owned(job_id, tenant):
            return None
        if limit is None:
            batches = self.redis.lrange(self.keys.history(job_id), 0, -1)
            return {"job_id": job_id, **join_batches(batches, since), "next_since": None}
        batches, more = self.scripts.history_page(
            keys=[self.keys.history(job_id)], args=[since, limit]
        )
        page = join_batches(batches, since)
        cut = bool(more) or len(page["step"]) > limit
        page = {name: values[:limit] for name, values in page.items()}
        next_since = page["step"][-1] + 1 if cut and page["step"] else None
        return {"job_id": job_id, **page, "next_since": next_since}

    def job_data(self, job_id: str, *, tenant: str) -> bytes | None:
        """A job's inline data as the canonical JSON text its summary hashes (None: the
        job has none, or it is no job of `tenant`'s)."""
        if not ID_PATTERN.fullmatch(job_id):
            return None
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(self.keys.data(job_id))
            pipe.hmget(self.keys.job(job_id), "spec", "tenant")
            text, (spec, owner) = pipe.execute()
        if owner is None or owner.decode() != tenant:
            return None
        if text is None and spec is not None:  # a record from before data had its own key
            data = json.loads(spec).get("data")
            text = canonical(data) if data is not None and "x" in data else None
        return text

    def _owned(self, job_id: str, tenant: str) -> bool:
        owner = self.redis.hget(self.keys.job(job_id), "tenant")
        return owner is not None and owner.decode() == tenant

    def checkpoint(self, job_id: str) -> Json | None:
        raw = self.redis.get(self.keys.checkpoint(job_id))
        return None if raw is None else checkpoints.decode(raw)

    def get_model(self, model_id: str, *, tenant: str) -> Json | None:
        """The model document, if it is `tenant`'s (None otherwise, as for no model)."""
        if not ID_PATTERN.fullmatch(model_id):
            return None
        try:
            doc, owner = self.redis.hmget(self.keys.model(model_id), "doc", "tenant")
        except redis.ResponseError as exc:  # a model stored before tenants: a plain string
            if str(exc).startswith("WRONGTYPE"):
                return None
            raise
        if doc is None or owner is None or owner.decode() != tenant:
            return None
        return json.loads(doc)

    # -- deleting (only removals: they work when Redis is full) -------------------------------

    def delete_job(self, job_id: str, *, tenant: str) -> bool:
        """Delete a job, its history, checkpoint, inline data and index entries (its
        tenant's too) at once; a queued one never starts, a running one is told to cancel
        (and every later write of its run is refused: there is no job). Its model stays.
        False: no such job of `tenant`'s."""
        if not ID_PATTERN.fullmatch(job_id):
            return False
        args = [job_id, self.keys.cancel_channel(job_id), tenant, self.keys.changes_channel()]
        with refused_when_full():
            return bool(self.scripts.delete(keys=self.job_keys(job_id), args=args))

    def delete_model(self, model_id: str, *, tenant: str) -> bool:
        """False: no such model of `tenant`'s. The job that trained it keeps naming it in
        `model_id`."""
        return ID_PATTERN.fullmatch(model_id) is not None and bool(
            self.scripts.delete_model(keys=[self.keys.model(model_id)], args=[tenant])
        )

    # -- every guarded change -----------------------------------------------------------------

    def job_keys(self, job_id: str, model_id: str = "-") -> list[str]:
        """The KEYS of scripts.UPDATE and scripts.START."""
        k = self.keys
        return [
            k.job(job_id),
            k.history(job_id),
            k.checkpoint(job_id),
            k.model(model_id),
            k.lease(job_id),
            k.stranded(job_id),
            k.jobs(),
            k.data(job_id),
            k.expiry(),
            k.expiry_tenants(),
            k.webhook_deliveries(job_id),
            k.webhooks_due(),
            k.webhook_sending(job_id),
            *(k.jobs(s) for s in scripts.STATUSES),
        ]

    def apply(
        self, job_id: str, change: Change, client: redis.client.Pipeline | None = None
    ) -> tuple[bool, str]:
        """Apply `change` (scripts.UPDATE): (done, the status before, or now if refused;
        '' for no such job). A history batch that does not continue the stored history
        raises HistoryMismatch. With `client` (a pipeline in a transaction) the change is
        only queued: (True, '')."""
        keys = self.job_keys(job_id, change.model["id"] if change.model else "-")
        args = change.script_args(job_id, self.keys.cancel_channel(job_id))
        args += [str(self.retention_ms), self.keys.changes_channel()]
        if client is not None:
            self.scripts.update(keys=keys, args=args, client=client)
            return True, ""
        with refused_when_full():
            done, status, *mismatch = self.scripts.update(keys=keys, args=args)
        if mismatch:
            raise HistoryMismatch(int(mismatch[1]), mismatch[0] == b"behind")
        return bool(done), status.decode()

    # -- a worker's run: start, lease, report, hear of a cancel -------------------------------

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
        with refused_when_full():
            reply = self.scripts.start(
                keys=self.job_keys(job_id),
                args=[
                    job_id,
                    ticket or "",
                    token,
                    int(lease_ttl * 1000),
                    owner,
                    dumps(now()),
                    self.keys.changes_channel(),
                ],
            )
        if not reply[0]:
            return None
        _, attempt, spec, checkpoint, seconds, data = reply
        spec = json.loads(spec)
        if data:  # the run trains on the data itself, not its summary
            spec["data"] = json.loads(data)
        return Run(
            int(attempt),
            token,
            spec,
            checkpoints.decode(checkpoint) if checkpoint else None,
            float(seconds),
        )

    def renew_lease(self, job_id: str, run: Run, owner: str, lease_ttl: float) -> bool:
        """Renew the run's lease (take it again if it lapsed); False once the job is no
        longer this run's (cancelled, or handed to another run)."""
        value = f"{run.attempt} {run.token} {owner}"
        keys = [self.keys.job(job_id), self.keys.lease(job_id)]
        with refused_when_full():
            return bool(
                self.scripts.renew(keys=keys, args=[run.token, int(lease_ttl * 1000), value])
            )

    def record(self, job_id: str, token: str, report: Report) -> bool:
        """Write a run's report (progress, or its end) while the job is still the run's with
        `token`; False once it is not (cancelled, handed back): the run must stop."""
        return self.apply(job_id, report.change(token))[0]

    def cancel_listener(self, job_id: str) -> AbstractContextManager[CancelListener]:
        """Listen for a cancel of this job; subscribe before checking the status."""
        return listen(self.redis, self.keys.cancel_channel(job_id))
