"""A running job's checkpoint, written about once a second: a 301,450-parameter Adam state
(parameters and both moments), its size and the time to take and write it, as JSON text
(the store's first format, the baseline) and as raw float64 bytes (its format now).

"taken and encoded" is what the training loop spends building the checkpoint and encoding
it; "with the store's write" adds writing it with a history batch (one Lua call to a
redis-server with its append-only file, as `make run` starts it). `python -m bench
checkpoint` runs it alone.
"""

import tempfile
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np

from bench.timing import best_of
from engine.spec import normalize_spec, parameter_count
from engine.train import TrainingState
from service.stack import redis_server
from service.store import JobStore, Report
from service.store import checkpoint as checkpoints
from service.store.queue import connect
from service.strictjson import dumps

# 2-383-780-1: 301,450 parameters
SPEC = normalize_spec({"model": {"layers": [383, 780, 1]}, "optimizer": {"name": "adam"}})
HISTORY = {"step": [9], "loss": [0.5], "accuracy": [0.5]}


def trained_state():
    """A training state 10 steps in: random parameters, Adam moments of random gradients."""
    rng = np.random.default_rng(0)
    size = parameter_count(2, SPEC["model"]["layers"])
    state = TrainingState(SPEC, rng.standard_normal(size) * 0.1)
    for step in range(10):
        state.optimizer.step(state.params, rng.standard_normal(size), 1e-3)
        state.step = step + 1
    return state


@contextmanager
def stored_as_json():
    """The store as it was: a checkpoint written as JSON text."""
    encode = checkpoints.encode
    checkpoints.encode = lambda checkpoint: dumps(checkpoint).encode()
    try:
        yield
    finally:
        checkpoints.encode = encode


def record(store, job_id, token, checkpoint):
    """The recorder's checkpoint write: a history batch and the checkpoint, one Lua call."""
    progress = {"step": 10, "steps": SPEC["steps"]}
    report = Report(HISTORY, progress, {"loss": 0.5, "accuracy": 0.5}, checkpoint=checkpoint)
    store.redis.hset(store.keys.job(job_id), "recorded", 9)  # the batch continues the history
    store.redis.ltrim(store.keys.history(job_id), 0, -2)
    assert store.record(job_id, token, report)


def main():
    state = trained_state()
    forms = {  # (how the store encodes it, how the recorder takes it)
        "JSON text (before)": (stored_as_json, lambda: state.checkpoint()),
        "float64 bytes (now)": (nullcontext, lambda: state.checkpoint(arrays=True)),
    }
    figures = {}
    with tempfile.TemporaryDirectory() as data_dir:
        port = redis_server.free_port()
        redis = redis_server.start(port, Path(data_dir) / "redis")  # durable: AOF
        try:
            redis_server.wait_ready(redis_server.url(port), redis)
            store = JobStore(connect(redis_server.url(port)))
            job_id = store.create_job(SPEC, lambda pipe, job_id: None)[0]["id"]
            token = store.start(job_id).token
            for name, (encoding, take) in forms.items():
                with encoding():
                    size = len(checkpoints.encode(take()))
                    taking = best_of(lambda take=take: checkpoints.encode(take()), 5)
                    recording = best_of(lambda take=take: record(store, job_id, token, take()), 5)
                    assert len(store.redis.get(store.keys.checkpoint(job_id))) == size
                figures[name] = (size, taking, recording)
        finally:
            redis.terminate()
            redis.wait(10)
    print(f"{len(state.params):,}-parameter Adam checkpoint (3 vectors of float64):")
    for name, (size, taking, recording) in figures.items():
        print(
            f"  {name}: {size / 2**20:.2f} MiB, taken and encoded in {taking * 1e3:.1f} ms, "
            f"with the store's write {recording * 1e3:.1f} ms"
        )
    (json_size, json_take, json_record), (size, taking, recording) = figures.values()
    print(
        f"  now {json_size / size:.1f}x smaller, taken {json_take / taking:.0f}x and "
        f"written {json_record / recording:.0f}x faster"
    )


if __name__ == "__main__":
    main()
