"""Putting a job back in the queue: each a WATCH/MULTI transaction that checks the job's state,
changes it through scripts.UPDATE (a running job is rewound to its checkpoint) and enqueues a
new rq job (a new ticket) in one step, so a job is never queued without an rq job to run it
nor enqueued twice. Many workers may try the same at once: one wins, the others see that the
job moved on."""

from collections.abc import Callable
from typing import Any, NamedTuple

import redis

from .queue import Enqueue
from .store import Json, Store, now


class JobState(NamedTuple):
    status: str | None
    token: str | None
    ticket: str | None
    requeues: int
    losses: int
    recorded: int
    lease: str | None  # the lease's value: "<attempt> <token> <owner>"


def _read(pipe: redis.client.Pipeline, store: Store, job_id: str) -> JobState:
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
    store: Store, job_id: str, step: Callable[[redis.client.Pipeline, JobState], Any]
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


def hand_back(
    store: Store,
    job_id: str,
    attempt: int,
    token: str,
    history: Json,
    progress: Json,
    metrics: Json,
    checkpoint: Json | None,
    trained_seconds: float,
    enqueue: Enqueue,
) -> bool:
    """A running job gives itself back (its worker is stopping): its last history batch and
    checkpoint are written, it is queued again and a new rq job enqueued. False when the job
    is no longer this run's (nothing is written)."""

    def step(pipe: redis.client.Pipeline, state: JobState) -> bool | None:
        if state.status != "running" or state.token != token:
            return None
        batch, point = history, checkpoint
        first = history["step"][0] if history["step"] else state.recorded
        if first > state.recorded:  # Redis lost steps: back to the checkpoint it has
            batch, point = None, None
        elif first < state.recorded:  # an earlier write was applied after all
            batch = {name: values[state.recorded - first :] for name, values in history.items()}
        pipe.multi()
        requeues = state.requeues + 1
        ticket = enqueue(pipe, job_id, requeues)
        store.change(
            job_id,
            ("running",),
            "queued",
            attempt=attempt,
            history=batch,
            checkpoint=point,
            token=token,
            raw={"ticket": ticket or "", "requeues": requeues, "trained_seconds": trained_seconds},
            client=pipe,
            progress=progress,
            metrics=metrics,
        )
        return True

    return bool(_transaction(store, job_id, step))


def requeue_lost(
    store: Store, job_id: str, enqueue: Enqueue, max_lost: int, error: Json, owner: str | None
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
            store.change(
                job_id,
                ("running",),
                "failed",
                token=state.token,
                raw={"losses": losses},
                client=pipe,
                error=error,
                finished_at=now(),
            )
            return "failed"
        requeues = state.requeues + 1
        ticket = enqueue(pipe, job_id, requeues)
        store.change(
            job_id,
            ("running",),
            "queued",
            token=state.token,
            raw={"ticket": ticket or "", "requeues": requeues, "losses": losses},
            client=pipe,
        )
        return "queued"

    return _transaction(store, job_id, step)


def requeue_stranded(store: Store, job_id: str, ticket: str | None, enqueue: Enqueue) -> bool:
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
