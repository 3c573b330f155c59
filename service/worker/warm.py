"""Training programs compiled in the worker, before the fork, so that work-horses inherit them.

rq runs each job in a work-horse forked from the worker: a program a horse compiles dies
with it; one the worker holds when it forks, every later horse has. So, as it takes a
training job, the worker looks up (or compiles) the job's model in engine.compiled's
per-process cache, then forks: the horse's backend finds the program there, and the second
job of an architecture starts its first step without compiling.

Only models of up to WARM_MAX_PARAMETERS are compiled in the worker: a cancel or a job's
time limit stops the horse, not the worker, so a large model is left to its horse, as
before. Anything going wrong here is logged and left to the horse too.
"""

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy.ma  # noqa: F401  np.unique imports it on first use: once here, not per horse

from engine.compiled.backend import model_program
from engine.compiled.cache import PROGRAMS

from ..store import JobStore

log = logging.getLogger(__name__)

WARM_MAX_PARAMETERS = 100_000  # 2-64-64-1 has 4,417 and compiles in milliseconds

taken_at: float | None = None  # perf_counter when the worker took the job; horses inherit it


def before_fork(store: JobStore, job_id: str) -> None:
    """Note when the worker took a training job and compile its model into the cache."""
    global taken_at
    taken_at = time.perf_counter()
    try:
        raw = store.redis.hget(store.keys.job(job_id), "spec")
        spec = json.loads(raw) if raw is not None else None
        if not spec or spec.get("engine") != "compiled":
            return
        model = spec["model"]
        sizes = [model["inputs"], *model["layers"]]
        parameters = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:], strict=False))
        if parameters <= WARM_MAX_PARAMETERS:
            model_program(model)
    except Exception:  # the horse compiles it, as without this
        log.warning("job %s: cannot compile its model before the fork", job_id, exc_info=True)


def timed(on_step: Callable[[Any], None], job_id: str) -> Callable[[Any], None]:
    """on_step, logging once how long after the worker took the job its first step came,
    and whether the horse had to compile (the program was not in the cache it inherited)."""
    misses = PROGRAMS.misses
    called = time.perf_counter()
    first = True

    def on_step_timed(progress: Any) -> None:
        nonlocal first
        if first and taken_at is not None:
            first = False
            now = time.perf_counter()
            log.info(
                "job %s: first step %.1f ms after the worker took it, %.1f ms after train() "
                "began (%s)",
                job_id,
                (now - taken_at) * 1e3,
                (now - called) * 1e3,
                "compiled in the horse" if PROGRAMS.misses > misses else "program inherited",
            )
        on_step(progress)

    return on_step_timed
