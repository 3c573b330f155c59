"""The worker's job functions and its recorder, run in this process against the real Redis
(the end-to-end tests run them in real rq workers)."""

import numpy as np
import pytest

from engine.data import make_moons
from service.worker import jobs
from service.worker.recorder import JobStopped, Pace, Recorder, Watch

from .service_helpers import TENANT, forward, small_spec, wait_until


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Progress:
    """What engine.train hands on_step."""

    def __init__(self, step, steps=100):
        self.step, self.steps, self.loss, self.accuracy = step, steps, 1.0 / (step + 1), 0.5

    def checkpoint(self, arrays=False):
        parameters = [0.0, float(self.step)]
        return {
            "version": 1,
            "step": self.step + 1,
            "parameters": np.array(parameters) if arrays else parameters,
        }


def submit(client, spec):
    return client.post("/v1/jobs", json=spec).get_json()["id"]


@pytest.fixture
def running(store):
    """A job marked running, a recorder on a clock the test moves, and its listener."""
    job_id = store.create_job({"steps": 100}, lambda pipe, job_id: None, tenant=TENANT)[0]["id"]
    with store.cancel_listener(job_id) as listener:
        run = store.start(job_id)
        clock = Clock()
        yield job_id, Recorder(store, job_id, run, Pace(0.25, 1.0), Watch(listener), clock), clock


def test_recorder_writes_history_in_batches_not_per_step(store, running):
    job_id, record, clock = running
    for step in range(10):
        clock.now = step * 0.02  # 50 steps a second
        record(Progress(step))
    assert store.history(job_id, tenant=TENANT)["step"] == []  # nothing before a quarter second
    clock.now = 0.25
    record(Progress(10))
    assert store.history(job_id, tenant=TENANT)["step"] == list(range(11))
    assert store.redis.llen(store.keys.history(job_id)) == 1
    job = store.get_job(job_id, tenant=TENANT)
    assert job["progress"] == {"step": 11, "steps": 100}
    assert job["metrics"] == {"loss": 1 / 11, "accuracy": 0.5}
    assert store.checkpoint(job_id) is None


def test_recorder_checkpoints_every_second_with_the_history_up_to_it(store, running):
    job_id, record, clock = running
    for step in range(60):
        clock.now = step * 0.02
        record(Progress(step))
    checkpoint = store.checkpoint(job_id)
    assert checkpoint is not None and checkpoint["step"] == 51  # taken at 1.0 s, after step 50
    assert checkpoint["parameters"].tolist() == [0.0, 50.0]  # stored as float64 bytes
    assert store.redis.llen(store.keys.history(job_id)) == 4  # 0.25, 0.5, 0.75 and 1.0 s
    assert store.history(job_id, tenant=TENANT)["step"] == list(range(checkpoint["step"]))


def test_recorder_stops_at_the_step_after_a_cancel(store, running):
    job_id, record, clock = running
    record(Progress(0))
    store.cancel(job_id, tenant=TENANT)
    # the cancel reaches the subscription a moment after PUBLISH answers: on a busy machine
    # the next step can come first (a step that misses it still stops at its next write)
    wait_until(record.watch.cancel.cancelled, timeout=5)
    with pytest.raises(JobStopped):
        record(Progress(1))
    clock.now = 5.0
    assert not record.complete({"id": "a" * 32})
    assert (
        store.history(job_id, tenant=TENANT)["step"] == []
    )  # nothing was written after the cancel
    assert store.get_job(job_id, tenant=TENANT)["status"] == "cancelled"


def test_run_training_succeeds_with_history_and_a_consistent_model(client, worker_env):
    job_id = submit(
        client, small_spec(steps=20, dataset={"name": "moons", "samples": 32}, engine="reference")
    )
    jobs.run_training(job_id)
    job = client.get(f"/v1/jobs/{job_id}").get_json()
    assert job["status"] == "succeeded" and job["started_at"] and job["finished_at"]
    assert job["progress"] == {"step": 20, "steps": 20}
    history = client.get(f"/v1/jobs/{job_id}/history").get_json()
    assert history["step"] == list(range(20))
    assert history["loss"][-1] < history["loss"][0]
    model = client.get(f"/v1/models/{job['model_id']}").get_json()
    x, _ = make_moons(32, 0.1, 0)
    y = client.post(f"/v1/models/{model['id']}/predict", json={"x": x}).get_json()["y"]
    assert y == pytest.approx(forward(model, x)[:, 0].tolist(), rel=1e-9)


def test_run_training_that_diverges_fails_naming_the_step_and_keeps_history(client, worker_env):
    spec = small_spec(steps=50, engine="reference", optimizer={"name": "sgd", "learning_rate": 1e8})
    job_id = submit(client, spec)
    jobs.run_training(job_id)
    job = client.get(f"/v1/jobs/{job_id}").get_json()
    assert job["status"] == "failed" and job["model_id"] is None
    step = job["error"]["step"]
    assert 0 < step < 50 and f"step {step}" in job["error"]["detail"]
    assert client.get(f"/v1/jobs/{job_id}/history").get_json()["step"] == list(range(step))


def test_run_training_skips_a_cancelled_job(client, worker_env):
    job_id = submit(client, small_spec(engine="reference"))
    client.post(f"/v1/jobs/{job_id}/cancel")
    jobs.run_training(job_id)
    job = client.get(f"/v1/jobs/{job_id}").get_json()
    assert job["status"] == "cancelled" and job["started_at"] is None


def test_run_training_never_leaves_a_job_running(client, store, worker_env):
    job_id = submit(client, small_spec(engine="reference"))
    # a record the engine cannot run (written behind the API's back)
    store.redis.hset(store.keys.job(job_id), "spec", '{"steps": 3, "loss": "nope"}')
    jobs.run_training(job_id)
    job = client.get(f"/v1/jobs/{job_id}").get_json()
    assert job["status"] == "failed"
    assert job["error"]["type"].endswith("internal-error") and "traceback" not in str(job)


def test_evaluate_graph_skips_an_expired_graph(store, worker_env):
    jobs.evaluate_graph("0" * 32)  # no document: nothing to do, nothing written
    assert store.redis.dbsize() == 0
