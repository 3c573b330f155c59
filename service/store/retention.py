"""Retention: a finished job's keys expire on their own (scripts.UPDATE sets their time to
live when the job finishes); what stays behind is its id in the sorted-set indexes, which
the reaper sweeps away here, guided by the index of finished jobs by expiry time."""

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
    indexes = [keys.expiry(), keys.jobs(), *(keys.jobs(s) for s in scripts.STATUSES)]
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
        with store.redis.pipeline(transaction=False) as pipe:
            for job_id in gone:
                for index in indexes:
                    pipe.zrem(index, job_id)
            for job_id, ttl in zip(due, ttls, strict=True):
                if ttl == -1:
                    pipe.zrem(keys.expiry(), job_id)
                elif ttl > 1000:
                    pipe.zadd(keys.expiry(), {job_id: now + ttl})
            pipe.execute()
        swept += gone
        waiting = sum(1 for ttl in ttls if 0 <= ttl <= 1000)  # left where they are
        if len(due) < batch or waiting == len(due):
            return swept
