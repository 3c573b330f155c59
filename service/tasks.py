"""The worker's job functions (rq calls them by import path, with plain JSON arguments):
they need no request context and report through the store."""

import logging
from collections.abc import Mapping
from typing import Any

import redis
from rq import get_current_job
from rq.timeouts import JobTimeoutException

from engine.errors import InvalidInput, NumericError
from engine.graph import evaluate
from engine.train import train
from engine.value import paused_gc

from . import problems
from .config import load_config
from .graph_store import GraphStore
from .jsonprovider import loads
from .queue import connect
from .recorder import JobStopped, Recorder
from .store import Json, Store, dumps, new_id

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
    """Train a queued job; skip it if it is not queued any more (cancelled)."""
    config = load_config()
    store = Store(_connection(config))
    with store.cancel_listener(job_id) as cancel:  # listening before the status check
        attempt = store.mark_running(job_id)
        if attempt is None:
            log.info("job %s is not queued any more: skipped", job_id)
            return
        spec = store.get_job(job_id)["spec"]
        recorder = Recorder(
            store,
            job_id,
            attempt,
            spec["steps"],
            cancel,
            config["HISTORY_FLUSH_INTERVAL"],
            config["CHECKPOINT_INTERVAL"],
        )
        try:
            result = train(spec, on_step=recorder)
        except JobStopped:
            log.info("job %s was cancelled", job_id)
            return
        except NumericError as exc:
            recorder.fail(problems.diverged(exc))
            return
        except JobTimeoutException:
            recorder.fail(problems.timed_out(config["JOB_TIMEOUT"]))
            return
        except Exception:
            log.exception("job %s failed", job_id)
            recorder.fail(problems.crashed())
            return
        recorder.complete(model_document(job_id, spec, result.parameters, recorder.metrics))


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
            result_json = dumps(evaluate(loads(document), max_nodes=config["MAX_GRAPH_NODES"]))
    except NumericError as exc:
        graphs.finish(graph_id, error=problems.non_finite(exc))
    except InvalidInput as exc:
        graphs.finish(graph_id, error=problems.invalid_input(exc.errors))
    except Exception:
        log.exception("graph %s failed", graph_id)
        graphs.finish(graph_id, error=problems.crashed("evaluation"))
    else:
        graphs.finish(graph_id, result_json=result_json)
