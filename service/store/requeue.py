"""Putting a job back in the queue, and finding the jobs that need it (the reaper's part).

Each hand-back is a WATCH/MULTI transaction that checks the job's state, changes it
through scripts.UPDATE (a running job is rewound to its checkpoint) and enqueues a new rq
job (a new ticket) in one step, so a job is never queued without an rq job to run it nor
enqueued twice. Many workers may try the same at once: one wins, the others see that the
job moved on."""

from collections.abc import Callable
from dataclasses import replace
from typing import Any, NamedTuple

import redis

from .changes import Change, Json, Report
from .history import cut
from .ids import now
from .jobs import JobStore
from .queue import Enqueue


class JobState(NamedTuple):
    status: str | None
    token: str | None
    ticket: str | None
    requeues: int
    losses: int
    recorded: int
    lease: str | None  # the lease's value: "<attempt> <token> <owner>"


def _read(pipe: redis.client.Pipeline, store: JobStore, job_id: str) -> JobState:
    fields = ("status", "run", "ticket", "requeues", "losses", "recorded")
    values = [v.decode() if v else None for v in pipe.hmget(store.keys.job(job_id), fields)]
    lease = pipe.get(store.keys.lease(job_id))
    status, token, ticket, requeues, losses, recorded = values
    return JobState(
        status,
        token,
        ticket,
        int(requeues or 0),
        int(losses or 0),
        int(recorded or 0),
        lease.decode() if lease else None,
    )


def _transaction(
    store: JobStore, job_id: str, step: Callable[[redis.client.Pipeline, JobState], Any]
) -> Any:
    """Run step(pipe, state) under WATCH of the job and its lease; it returns None to do
    nothing, or calls pipe.multi(), queues its writes and returns its outcome."""
    with store.redis.pipeline() as pipe:
        while True:
            try:
                pipe.watch(store.keys.job(job_id), store.keys.lease(job_id))
                outcome = step(pipe, _read(pipe, store, job_id))
                if outcome is None:
                    pipe.unwatch()
                    return None
                pipe.execute()
                return outcome
            except redis.WatchError:
                continue  # the job changed meanwhile: look again


def hand_back(store: JobStore, job_id: str, token: str, report: Report, enqueue: Enqueue) -> bool:
    """A running job gives itself back (its worker is stopping): its last report (history
    batch, checkpoint, training time) is written, it is queued again and a new rq job
    enqueued. False when the job is no longer the run's with `token` (nothing is written)."""

    def step(pipe: redis.client.Pipeline, state: JobState) -> bool | None:
        if state.status != "running" or state.token != token:
            return None
        batch, point = report.history, report.checkpoint
        first = batch["step"][0] if batch["step"] else state.recorded
        if first > state.recorded:  # Redis lost steps: back to the checkpoint it has
            batch, point = None, None
        elif first < state.recorded:  # an earlier write was applied after all
            batch = cut(batch, state.recorded)
        pipe.multi()
        requeues = state.requeues + 1
        ticket = enqueue(pipe, job_id, requeues)
        change = report.change(token)
        requeued = {"ticket": ticket or "", "requeues": requeues}
        change = replace(
            change,
            to="queued",
            history=batch,
            checkpoint=point,
            hidden={**change.hidden, **requeued},
        )
        store.apply(job_id, change, client=pipe)
        return True

    return bool(_transaction(store, job_id, step))


def requeue_lost(
    store: JobStore, job_id: str, enqueue: Enqueue, max_lost: int, error: Json, owner: str | None
) -> str | None:
    """A running job whose run is lost goes back to the queue, rewound to its checkpoint
    ('queued'), or, lost `max_lost` times in a row without a new checkpoint, fails with
    `error` ('failed'). Lost: with `owner` None, its lease has lapsed; else the lease is
    `owner`'s (a worker whose work-horse died). None: nothing to do."""

    def step(pipe: redis.client.Pipeline, state: JobState) -> str | None:
        if state.status != "running":
            return None
        holder = state.lease.split(" ", 2)[2] if state.lease else None
        if (owner is None and state.lease is not None) or (owner is not None and holder != owner):
            return None
        pipe.multi()
        losses = state.losses + 1
        if losses > max_lost:
            failed = Change(
                ("running",),
                to="failed",
                token=state.token,
                fields={"error": error, "finished_at": now()},
                hidden={"losses": losses},
            )
            store.apply(job_id, failed, client=pipe)
            return "failed"
        requeues = state.requeues + 1
        ticket = enqueue(pipe, job_id, requeues)
        queued = Change(
            ("running",),
            to="queued",
            token=state.token,
            hidden={"ticket": ticket or "", "requeues": requeues, "losses": losses},
        )
        store.apply(job_id, queued, client=pipe)
        return "queued"

    return _transaction(store, job_id, step)


def requeue_stranded(store: JobStore, job_id: str, ticket: str | None, enqueue: Enqueue) -> bool:
    """A queued job whose rq job is gone (taken by a worker that died before starting it)
    gets a new one; the old ticket can no longer start it."""

    def step(pipe: redis.client.Pipeline, state: JobState) -> bool | None:
        if state.status != "queued" or state.ticket != ticket:
            return None
        pipe.multi()
        requeues = state.requeues + 1
        new_ticket = enqueue(pipe, job_id, requeues)
        pipe.hset(
            store.keys.job(job_id), mapping={"ticket": new_ticket or "", "requeues": requeues}
        )
        pipe.delete(store.keys.stranded(job_id))
        return True

    return bool(_transaction(store, job_id, step))


# -- what the reaper looks for ------------------------------------------------------------


def running_without_lease(store: JobStore) -> list[str]:
    """Running jobs whose lease has lapsed: their worker is gone (or cut off)."""
    running = [m.decode() for m in store.redis.zrange(store.keys.jobs("running"), 0, -1)]
    with store.redis.pipeline(transaction=False) as pipe:
        for job_id in running:
            pipe.exists(store.keys.lease(job_id))
        leased = pipe.execute()
    return [job_id for job_id, held in zip(running, leased, strict=True) if not held]


def queued_tickets(store: JobStore) -> list[tuple[str, str | None]]:
    """(job id, the rq job id that may start it) of every queued job."""
    queued = [m.decode() for m in store.redis.zrange(store.keys.jobs("queued"), 0, -1)]
    with store.redis.pipeline(transaction=False) as pipe:
        for job_id in queued:
            pipe.hget(store.keys.job(job_id), "ticket")
        tickets = pipe.execute()
    return [(j, t.decode() if t else None) for j, t in zip(queued, tickets, strict=True)]


def stranded(store: JobStore, job_id: str, ticket: str, grace: float) -> bool:
    """Has the job stayed queued on `ticket` for `grace` seconds since a reaper first saw
    that rq job missing from the queue? (Call each time it is seen missing.)"""
    keys = [store.keys.job(job_id), store.keys.stranded(job_id)]
    return bool(store.scripts.stranded(keys=keys, args=[ticket, int(grace * 1000)]))


def take_reaper_turn(store: JobStore, seconds: float) -> bool:
    """True for one caller per `seconds` across all workers."""
    return bool(store.redis.set(store.keys.reaper_turn(), "1", nx=True, px=int(seconds * 1000)))
