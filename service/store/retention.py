"""Retention: a finished job's keys expire on their own (scripts.UPDATE sets their time to
live when the job finishes); what stays behind is its id in the sorted-set indexes (every
job's and its tenant's), which the reaper sweeps away here, guided by the index of finished
jobs by expiry time. Jobs that finished before there was retention are given theirs once
(`adopt_finished`)."""

import json
import time
from datetime import datetime

from . import scripts
from .jobs import JobStore

SWEEP_BATCH = 500
"""Expired jobs looked at per round trip of a sweep."""


def sweep_expired(store: JobStore, batch: int = SWEEP_BATCH) -> list[str]:
    """Remove from every index the jobs whose time is up and whose record Redis has deleted;
    their ids. Only removals in the usual case, so it runs on a full Redis too. A job still
    there is left for a later sweep (its last milliseconds), or re-dated if its time to live
    was lengthened by hand, or dropped from the expiry index if it was made permanent."""
    keys, swept = store.keys, []
    indexes = [keys.jobs(), *(keys.jobs(s) for s in scripts.STATUSES)]
    tenants = keys.expiry_tenants()
    while True:
        seconds, micros = store.redis.time()
        now = seconds * 1000 + micros // 1000
        due = [m.decode() for m in store.redis.zrangebyscore(keys.expiry(), "-inf", now, 0, batch)]
        if not due:
            return swept
        with store.redis.pipeline(transaction=False) as pipe:
            for job_id in due:
                pipe.pttl(keys.job(job_id))
            ttls = pipe.execute()
        gone = [job_id for job_id, ttl in zip(due, ttls, strict=True) if ttl == -2]
        owners = store.redis.hmget(tenants, gone) if gone else []
        with store.redis.pipeline(transaction=False) as pipe:
            for job_id, own in zip(gone, owners, strict=True):
                for index in indexes + _tenant_indexes(own):
                    pipe.zrem(index, job_id)
                pipe.hdel(tenants, job_id)
                pipe.zrem(keys.expiry(), job_id)  # the last: a sweep cut short finds it again
            for job_id, ttl in zip(due, ttls, strict=True):
                if ttl == -1:
                    pipe.zrem(keys.expiry(), job_id)
                    pipe.hdel(tenants, job_id)
                elif ttl > 1000:
                    pipe.zadd(keys.expiry(), {job_id: now + ttl})
            pipe.execute()
        swept += gone
        waiting = sum(1 for ttl in ttls if 0 <= ttl <= 1000)  # left where they are
        if len(due) < batch or waiting == len(due):
            return swept


def _tenant_indexes(own: bytes | None) -> list[str]:
    """A tenant's indexes from the name its job hash kept in `tenant_jobs` (none for a job
    stored before tenants)."""
    if own is None:
        return []
    return [own.decode(), *(f"{own.decode()}:{s}" for s in scripts.STATUSES)]


TERMINAL = ("succeeded", "failed", "cancelled")


def adopt_finished(store: JobStore, batch: int = 1_000) -> list[str]:
    """Finished jobs with no time to live (stored before retention existed) expire at the
    end of their retention, counted from when they finished (at once if that is past);
    their ids. Once per Redis: a mark says it was done, so a pass costs one EXISTS."""
    keys = store.keys
    if store.redis.exists(keys.retention_adopted()):
        return []
    adopted: list[str] = []
    for status in TERMINAL:
        ids = [m.decode() for m, _ in store.redis.zscan_iter(keys.jobs(status), count=batch)]
        for start in range(0, len(ids), batch):
            adopted += _adopt(store, ids[start : start + batch])
    store.redis.set(keys.retention_adopted(), "1")
    return adopted


def _adopt(store: JobStore, ids: list[str]) -> list[str]:
    keys, fields = store.keys, ("finished_at", "model_id", "retention_ms", "tenant_jobs")
    with store.redis.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.pttl(keys.job(job_id))
            pipe.hmget(keys.job(job_id), fields)
        replies = pipe.execute()
    adopted = []
    with store.redis.pipeline() as pipe:  # all or nothing (a full Redis refuses it all)
        for job_id, ttl, (finished, model_id, ms, own) in zip(
            ids, replies[::2], replies[1::2], strict=True
        ):
            if ttl != -1:
                continue
            stamp = json.loads(finished) if finished else None
            since = datetime.fromisoformat(stamp).timestamp() if stamp else time.time()
            at = round(since * 1000) + int(ms or store.retention_ms)
            owned = [keys.job(job_id), keys.history(job_id), keys.checkpoint(job_id)]
            owned.append(keys.data(job_id))
            if model_id and json.loads(model_id):
                owned.append(keys.model(json.loads(model_id)))
            for key in owned:
                pipe.pexpireat(key, at)
            pipe.zadd(keys.expiry(), {job_id: at})
            if own is not None:
                pipe.hset(keys.expiry_tenants(), job_id, own)
            adopted.append(job_id)
        pipe.execute()
    return adopted
