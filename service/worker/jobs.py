"""The worker's job functions, the only functions a queue entry names (rq calls them by
import path, with plain JSON arguments): they need no request context and report through
the store."""

import logging
import os
import socket
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import redis
from rq import get_current_job
from rq.timeouts import JobTimeoutException

from engine.columns import GraphColumns, is_packed, unpack
from engine.compiled.evaluate import result_json as columns_result_json
from engine.errors import InvalidInput, NumericError
from engine.evaluate import evaluate, parse
from engine.graph import ParsedGraph
from engine.train import train
from engine.value import paused_gc

from .. import problems
from ..config import load_config
from ..retry import retry
from ..store import GraphStore, JobStore, Run
from ..store.cancel import CancelListener
from ..store.changes import Json
from ..store.ids import new_id
from ..store.queue import connect, make_queue, training_enqueuer
from ..strictjson import fast_dumps, loads
from . import warm
from .deadline import Deadline
from .lease import Lease, hand_back_requested
from .recorder import (
    JobCancelled,
    JobHandedBack,
    JobStopped,
    JobTimedOut,
    Pace,
    Recorder,
    Watch,
)

log = logging.getLogger(__name__)


def _connection(config: Mapping[str, Any]) -> redis.Redis:
    """The rq job's own connection in a worker; one from REDIS_URL anywhere else."""
    job = get_current_job()
    return job.connection if job is not None else connect(config["REDIS_URL"])


def model_document(job_id: str, spec: Json, parameters: list[float], metrics: Json) -> Json:
    return {
        "id": new_id(),
        "job_id": job_id,
        "model": spec["model"],
        "loss": spec["loss"],
        "parameters": parameters,
        "metrics": metrics,
    }


def run_training(job_id: str) -> None:
    """Train a queued job, from its checkpoint if an earlier run left one; skip it if it is
    not queued any more (cancelled, or started by another rq job)."""
    config = load_config()
    # Its own client with short timeouts (not rq's, which rides out outages for half a
    # minute): the recorder decides what a failed write means (keep the steps, go on).
    store = JobStore(connect(config["REDIS_URL"], config["WORKER_REDIS_TIMEOUT"]))
    rq_job = get_current_job()
    owner = os.environ.get("RQ_WORKER_ID") or f"{socket.gethostname()}.{os.getpid()}"
    ttl = config["LEASE_TTL"]
    with store.cancel_listener(job_id) as cancel:  # listening before the status check
        token = new_id()[:16]  # the same again if the start is retried
        run = retry(
            lambda: store.start(job_id, rq_job.id if rq_job else None, owner, ttl, token),
            (redis.ConnectionError, redis.TimeoutError),
            config["WRITE_PATIENCE"],
        )
        if run is None:
            log.info("job %s is not queued any more: skipped", job_id)
            return
        # In a work-horse, also watch the worker: a horse whose worker died hands back.
        parent = os.getppid() if rq_job is not None else None
        with Lease(store, job_id, run, owner, ttl, parent) as lease:
            watch = Watch(
                cancel,
                lease,
                hand_back_requested,
                training_enqueuer(make_queue(store.redis, config)),
            )
            recorder = Recorder(store, job_id, run, Pace.from_config(config, run.spec), watch)
            log.info("job %s: run %d from step %d", job_id, run.attempt, recorder.progress["step"])
            try:
                with _deadline(job_id, run, recorder, in_horse=rq_job is not None):
                    if _train(job_id, run, recorder):
                        return  # its end is written
            except JobStopped:
                log.info("job %s: stopped (cancelled, or no longer this run's)", job_id)
            except JobHandedBack:
                log.info(
                    "job %s: handed back to the queue at step %d", job_id, recorder.progress["step"]
                )
                return
        # The run wrote no end. Cancelled: the horse may have seen it before its worker
        # killed it, and rq must record the same in both cases (stopped, not finished).
        if rq_job is not None and _cancelled(store, job_id, cancel):
            raise JobCancelled(job_id)


def _cancelled(store: JobStore, job_id: str, cancel: CancelListener) -> bool:
    """Was the job cancelled (or deleted)? A refused write may come before the listener
    has the cancel's message, so Redis is asked too."""
    if cancel.cancelled():
        return True
    try:
        status = store.redis.hget(store.keys.job(job_id), "status")
    except redis.RedisError:
        return False  # the job's status is in Redis whatever rq records
    return status is None or status == b"cancelled"


def _deadline(
    job_id: str, run: Run, recorder: Recorder, in_horse: bool
) -> AbstractContextManager[object]:
    """In a work-horse, the job's timeout kept inside a step too (it ends the process)."""
    limit = recorder.pace.time_limit
    if not in_horse or limit is None:
        return nullcontext()
    return Deadline(
        job_id, limit - run.trained_seconds, lambda: recorder.fail(problems.timeout(limit))
    )


def _train(job_id: str, run: Run, recorder: Recorder) -> bool:
    """Train to the end and record the outcome (JobStopped, JobHandedBack pass through):
    False if that write was refused (the job is not this run's any more)."""
    try:
        on_step = warm.timed(recorder, job_id)
        result = train(run.spec, on_step=on_step, checkpoint=run.checkpoint)
    except (JobStopped, JobHandedBack):
        raise
    except NumericError as exc:
        return recorder.fail(problems.diverged(exc))
    except JobTimedOut as exc:
        return recorder.fail(problems.timeout(exc.limit))
    except JobTimeoutException:  # rq's own limit (JOB_TIMEOUT), a backstop
        return recorder.fail(problems.timeout(recorder.pace.time_limit))
    except Exception:
        log.exception("job %s failed", job_id)
        return recorder.fail(problems.crashed())
    return recorder.complete(model_document(job_id, run.spec, result.parameters, recorder.metrics))


def evaluate_graph(graph_id: str) -> None:
    """Evaluate a queued graph document and store its result (or its problem)."""
    config = load_config()
    graphs = GraphStore(_connection(config))
    document = graphs.take(graph_id)
    if document is None:
        log.info("graph %s has expired: skipped", graph_id)
        return
    try:
        with paused_gc():  # parsed JSON and graphs have no cycles to collect
            result_json, nodes = _evaluated(document, config["MAX_GRAPH_NODES"])
    except NumericError as exc:
        graphs.finish(graph_id, error=problems.non_finite(exc))
    except InvalidInput as exc:
        graphs.finish(graph_id, error=problems.invalid_input(exc.errors))
    except Exception:
        log.exception("graph %s failed", graph_id)
        graphs.finish(graph_id, error=problems.crashed("evaluation"))
    else:
        graphs.finish(graph_id, result_json=result_json, nodes=nodes)


def _evaluated(document: bytes, max_nodes: int) -> tuple[str | bytes, int]:
    """A queued graph's result as JSON text, and its count of nodes. A large graph came as
    the columns the API validated (engine.columns.pack): evaluated as they are, the result
    written from arrays."""
    if is_packed(document):
        parsed: ParsedGraph | GraphColumns = unpack(document)
    else:
        parsed = parse(loads(document), max_nodes)  # a document queued as JSON: a small one
    if isinstance(parsed, GraphColumns):
        return columns_result_json(parsed), len(parsed.ids)
    return fast_dumps(evaluate(parsed)), len(parsed.ids)
