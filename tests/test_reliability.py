"""Fault injection with real processes, killed by pid: a work-horse or a whole worker killed
with SIGKILL, a worker stopped with SIGTERM, a horse frozen while another run takes its job,
two workers handed one job at once, Redis stopped (and frozen) under the API and a worker,
and the whole stack killed and started again on its data. Every job must end `succeeded`
with exactly the history and parameters of an uninterrupted run of its spec, float for
float: no step missing, none twice. Each test records the seconds from its fault to the
job running again and the stored steps that were computed twice (printed at the end)."""

import functools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

import pytest
import requests

from engine.spec import normalize_spec
from engine.train import train
from service.config import load_config
from service.stack import Stack, redis_server
from service.store import LOCAL_TENANT, JobStore, Report
from service.store.queue import connect, make_queue, training_enqueuer
from service.store.requeue import requeue_lost

from .conftest import RELIABILITY_FIGURES
from .service_helpers import (
    ApiSession,
    children,
    descendants,
    exited,
    small_spec,
    wait_until,
    whole_history,
)

pytestmark = pytest.mark.e2e

BASE = {
    "model": {"inputs": 2, "layers": [16, 16, 1]},
    "dataset": {"name": "moons", "samples": 200},
    "optimizer": {"name": "adam", "learning_rate": 0.01},  # state to resume: moments
    "batch_size": 64,  # mini-batches drawn per step: a resume must draw the same
}
JOB_SECONDS = 4.0  # how long the test job trains, about: faults land in the middle of it
SETTINGS = {  # short leases and intervals: faults are noticed within seconds
    "GRADSERVE_LEASE_TTL": "2",
    "GRADSERVE_REAPER_INTERVAL": "0.5",
    "GRADSERVE_CHECKPOINT_INTERVAL": "0.5",
    "GRADSERVE_HISTORY_FLUSH_INTERVAL": "0.1",
}


@functools.cache
def spec():
    """The test job: as many steps as this machine trains in about JOB_SECONDS, however
    fast the engine is."""
    probe = 2000
    started = time.perf_counter()
    train({**BASE, "steps": probe})
    rate = probe / (time.perf_counter() - started)
    return normalize_spec({**BASE, "steps": int(min(300_000, max(10_000, rate * JOB_SECONDS)))})


def steps():
    return spec()["steps"]


@functools.cache
def uninterrupted():
    """The oracle: the job trained in this process without a fault, and its checkpoint a
    third of the way."""
    taken = {}

    def on_step(progress):
        if progress.step + 1 == steps() // 3:
            taken["checkpoint"] = progress.checkpoint()

    return train(spec(), on_step=on_step), taken["checkpoint"]


class Cluster:
    """Redis (a durable redis-server this test controls), the API under gunicorn and two
    workers supervised by service.stack.Stack, as `make run` runs them."""

    def __init__(self, directory, redis_port, api_port, workers=2):
        self.directory, self.redis_port = directory, redis_port
        self.redis_url = redis_server.url(redis_port)
        self.base = f"http://127.0.0.1:{api_port}"
        self.redis = None
        self.start_redis()
        self.store = JobStore(connect(self.redis_url, timeout=2.0))
        env = {
            **os.environ,
            **SETTINGS,
            "REDIS_URL": self.redis_url,
            "PORT": str(api_port),
            "WEB_CONCURRENCY": "2",
            "GUNICORN_ACCESS_LOG": "",
        }
        self.log = open(directory / "stack.log", "w")  # noqa: SIM115 - closed in stop()
        self.stack = Stack(workers=workers, data_dir=directory, env=env, output=self.log)
        self.stack.start()
        self.supervisor = threading.Thread(target=self.stack.supervise, daemon=True)
        self.supervisor.start()
        wait_until(lambda: answers(self.base), timeout=30)
        self.api = ApiSession(self.base, (directory / "api-key").read_text().strip())

    def start_redis(self):
        self.redis = redis_server.start(self.redis_port, self.directory / "redis")
        redis_server.wait_ready(self.redis_url, self.redis)

    def stop(self):
        self.stack.stopping = True
        self.supervisor.join()
        self.stack.stop()
        self.redis.terminate()
        self.redis.wait(10)
        self.log.close()

    def submit(self):
        response = self.api.post("/v1/jobs", json=spec(), timeout=10)
        assert response.status_code == 202, response.text
        return response.json()["id"]

    def job(self, job_id):
        return self.store.get_job(job_id, tenant=LOCAL_TENANT)

    def hidden(self, job_id, name):
        value = self.store.redis.hget(self.store.keys.job(job_id), name)
        return None if value is None else int(value)

    def running(self, job_id, past=0.2):
        """Wait until the job runs and has recorded `past` of its steps: its state."""
        job = self._running(job_id, past)
        if past:
            between_checkpoints(self.store, job_id)
        return job

    def _running(self, job_id, past):
        return wait_until(
            lambda: (
                (job := self.job(job_id))["status"] == "running"
                and job["progress"]["step"] >= past * steps()
                and job
            ),
            timeout=60,
        )

    def worker_of(self, job_id):
        """The pid of the worker whose horse runs the job (the lease names it), and the
        horse's pid."""
        lease = self.store.redis.get(self.store.keys.lease(job_id)).decode()
        worker = int(lease.split(" ")[2].rsplit(".", 1)[1])
        return worker, wait_until(lambda: next(iter(children(worker)), None), timeout=5)

    def idle(self):
        """No job running, and each of the stack's workers registered and waiting."""

        def ready():
            if self.store.redis.zcard(self.store.keys.jobs("running")):
                return False
            states = {}
            for key in self.store.redis.smembers("rq:workers"):
                worker = self.store.redis.hgetall(key)
                if worker.get(b"pid"):
                    states[int(worker[b"pid"])] = worker.get(b"state")
            return all(states.get(w.pid) == b"idle" for w in self.stack.workers)

        wait_until(ready, timeout=30)


def between_checkpoints(store, job_id):
    """Wait until halfway between two checkpoints of the job: a fault then lands where it
    typically does, not just after a checkpoint (the test would align with them)."""

    def checkpointed():
        return store.redis.hget(store.keys.job(job_id), "cp_recorded")

    before = checkpointed()
    wait_until(lambda: checkpointed() != before, timeout=10)
    time.sleep(float(SETTINGS.get("GRADSERVE_CHECKPOINT_INTERVAL", 1.0)) / 2)


def answers(base):
    try:
        return requests.get(f"{base}/readyz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    uninterrupted()  # before the workers compete for the cores
    running = Cluster(
        tmp_path_factory.mktemp("reliability"), redis_server.free_port(), redis_server.free_port()
    )
    yield running
    running.stop()


def finished(cluster, job_id, timeout=90):
    return wait_until(
        lambda: (
            (job := cluster.job(job_id))["status"] in ("succeeded", "failed", "cancelled") and job
        ),
        timeout=timeout,
    )


def check_exact(api, job_id, job):
    """Succeeded, with the history and parameters of the uninterrupted run, exactly."""
    assert job["status"] == "succeeded", job["error"]
    expected, _ = uninterrupted()
    history = whole_history(
        lambda path: api.get(path, timeout=10).json(), f"/v1/jobs/{job_id}/history"
    )
    assert history["step"] == list(range(steps()))  # each step once, none missing
    assert history["loss"] == expected.loss
    assert history["accuracy"] == expected.accuracy
    model = api.get(f"/v1/models/{job['model_id']}", timeout=10).json()
    assert model["parameters"] == expected.parameters
    assert job["progress"] == {"step": steps(), "steps": steps()}


def resumed_after(cluster, job_id, attempt, since):
    """Seconds from `since` until a run after `attempt` is running the job."""
    wait_until(
        lambda: (
            (job := cluster.job(job_id))["attempt"] > attempt
            and job["status"] in ("running", "succeeded")
        ),
        timeout=60,
        interval=0.01,
    )
    return time.monotonic() - since


def record(fault, seconds, rewound):
    RELIABILITY_FIGURES.append(
        f"{fault:<46} {seconds:5.2f} s to running again, {rewound:5d} stored steps recomputed"
    )


class Fault(NamedTuple):
    """A fault that costs a running job its run."""

    figure: str  # how the figures printed at the end name it
    inject: Callable[[int, int], Callable[[], None] | None]  # (worker, horse) -> its undoing
    exits: str | None  # "worker" or "horse": must then exit by itself
    handed_back: bool  # the run gave the job back at its step: nothing is computed twice
    within: float  # seconds until the job runs again, at most


def kill_horse(worker, horse):
    os.kill(horse, signal.SIGKILL)


def kill_worker_and_horse(worker, horse):
    os.kill(worker, signal.SIGKILL)
    os.kill(horse, signal.SIGKILL)


def stop_worker(worker, horse):
    os.kill(worker, signal.SIGTERM)  # the horse checkpoints at its step and hands back


def kill_worker(worker, horse):
    os.kill(worker, signal.SIGKILL)  # the horse is left behind, an orphan: it hands back


def freeze_horse(worker, horse):
    os.kill(horse, signal.SIGSTOP)  # alive, holding its run, but silent: its lease lapses
    return lambda: os.kill(horse, signal.SIGCONT)  # it wakes racing the new run: all refused


FAULTS = {
    "horse-killed": Fault("work-horse kill -9", kill_horse, None, False, 30),
    "worker-and-horse-killed": Fault(
        "worker (main + horse) kill -9", kill_worker_and_horse, None, False, 30
    ),
    "worker-sigterm": Fault("worker SIGTERM", stop_worker, "worker", True, 5),
    "worker-killed": Fault(
        "worker main kill -9 (its horse hands back)", kill_worker, "horse", True, 30
    ),
    "horse-frozen": Fault(
        "horse frozen (SIGSTOP) past its lease", freeze_horse, "horse", False, 30
    ),
}


@pytest.mark.parametrize("fault", FAULTS.values(), ids=FAULTS.keys())
def test_a_run_lost_to_a_fault_resumes_exactly_in_another(cluster, fault):
    cluster.idle()
    job_id = cluster.submit()
    attempt = cluster.running(job_id)["attempt"]
    worker, horse = cluster.worker_of(job_id)
    struck = time.monotonic()
    undo = fault.inject(worker, horse)
    try:
        seconds = resumed_after(cluster, job_id, attempt, struck)
        if undo is not None:
            cluster.running(job_id, past=0.0)  # the new run holds the job
    finally:
        if undo is not None:
            undo()
    if fault.exits is not None:
        gone = worker if fault.exits == "worker" else horse
        wait_until(lambda: exited(gone), timeout=30)
    job = finished(cluster, job_id)
    check_exact(cluster.api, job_id, job)
    assert job["attempt"] == attempt + 1  # one run lost, one more run to the end
    rewound = cluster.hidden(job_id, "rewound") or 0
    if fault.handed_back:
        assert rewound == 0  # checkpointed at the step it stopped at
    assert seconds < fault.within
    record(fault.figure, seconds, rewound)


def test_two_workers_handed_one_resumed_job_at_once_run_it_once(cluster):
    """A job whose run died after its checkpoint is handed back with its rq job in the
    queue twice: both idle workers take it at the same moment, one starts it."""
    cluster.idle()
    store, config = cluster.store, load_config()
    enqueue = training_enqueuer(make_queue(store.redis, config))
    job_id = store.create_job(spec(), lambda pipe, job_id: None, tenant=LOCAL_TENANT)[0][
        "id"
    ]  # no rq job yet
    expected, checkpoint = uninterrupted()
    at = checkpoint["step"]
    run = store.start(job_id, owner="test.0", lease_ttl=60)  # a run that will "die"
    written = at + 500  # it recorded past its checkpoint: 500 steps to drop

    def history(start, stop):  # the uninterrupted run's
        return {
            "step": list(range(start, stop)),
            "loss": expected.loss[start:stop],
            "accuracy": expected.accuracy[start:stop],
        }

    metrics = {"loss": None, "accuracy": None}
    progress = {"step": at, "steps": steps()}
    first = Report(history(0, at), progress, metrics, checkpoint=checkpoint)
    assert store.record(job_id, run.token, first)
    assert store.record(job_id, run.token, Report(history(at, written), progress, metrics))

    def twice(pipe, resource_id, requeues=0):
        ticket = enqueue(pipe, resource_id, requeues)
        pipe.rpush(enqueue.queue.key, ticket)  # delivered twice
        return ticket

    handed = time.monotonic()
    assert requeue_lost(store, job_id, twice, 3, {}, owner="test.0") == "queued"
    seconds = resumed_after(cluster, job_id, 1, handed)
    job = finished(cluster, job_id)
    check_exact(cluster.api, job_id, job)
    assert job["attempt"] == 2  # the second worker found it taken
    assert cluster.hidden(job_id, "run_from") == at
    assert cluster.hidden(job_id, "rewound") == written - at
    record("one job delivered to two idle workers", seconds, cluster.hidden(job_id, "rewound") or 0)


def unavailable_quickly(api, method, path, **kwargs):
    """A 503 problem with Retry-After, answered within 2 s."""
    started = time.monotonic()
    response = api.request(method, path, timeout=5, **kwargs)
    elapsed = time.monotonic() - started
    assert response.status_code == 503, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert int(response.headers["Retry-After"]) > 0
    assert response.json()["status"] == 503 and response.json()["title"]
    assert elapsed < 2.0, f"{method} {path} took {elapsed:.2f} s"


def test_redis_stopped_and_frozen_under_the_api_and_a_worker(cluster):
    cluster.idle()
    job_id = cluster.submit()
    cluster.running(job_id)
    paths = [("GET", f"/v1/jobs/{job_id}"), ("POST", "/v1/jobs"), ("GET", "/readyz")]

    os.kill(cluster.redis.pid, signal.SIGSTOP)  # frozen: connections hang, not refused
    try:
        for method, path in paths:
            unavailable_quickly(cluster.api, method, path, json=small_spec())
    finally:
        os.kill(cluster.redis.pid, signal.SIGCONT)

    progress = cluster.running(job_id, past=0.0)["progress"]["step"]
    os.kill(cluster.redis.pid, signal.SIGKILL)
    cluster.redis.wait()
    for method, path in paths:
        unavailable_quickly(cluster.api, method, path, json=small_spec())
    assert requests.get(f"{cluster.base}/healthz", timeout=2).status_code == 200
    time.sleep(1.0)  # down for a while: the worker's writes fail meanwhile
    back = time.monotonic()
    cluster.start_redis()  # on the same data: its append-only file
    wait_until(
        lambda: (
            (job := cluster.job(job_id))["status"] != "running"
            or job["progress"]["step"] > progress
        ),
        timeout=30,
        interval=0.01,
    )
    seconds = time.monotonic() - back
    job = finished(cluster, job_id)
    check_exact(cluster.api, job_id, job)
    assert seconds < 30
    record(
        "Redis kill -9 (from its restart)",
        seconds,
        cluster.hidden(job_id, "rewound") or 0,
    )


def test_the_whole_stack_killed_and_started_again_loses_no_accepted_job(tmp_path):
    api_port, redis_port = redis_server.free_port(), redis_server.free_port()
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(
        SETTINGS,
        PORT=str(api_port),
        REDIS_PORT=str(redis_port),
        GRADSERVE_DATA_DIR=str(tmp_path),
        WORKERS="2",
        WEB_CONCURRENCY="1",
        GUNICORN_ACCESS_LOG="",
    )
    base = f"http://127.0.0.1:{api_port}"
    uninterrupted()

    def run():
        log = open(tmp_path / "run.log", "a")  # noqa: SIM115 - the child keeps it
        process = subprocess.Popen(
            [sys.executable, "-m", "service.stack"], env=env, stdout=log, stderr=log
        )
        wait_until(lambda: answers(base), timeout=30)
        return process

    first = run()
    store = JobStore(connect((tmp_path / "redis-url").read_text().strip(), timeout=2.0))
    api = ApiSession(base, (tmp_path / "api-key").read_text().strip())  # make run's own key
    accepted = []
    for _ in range(4):
        response = api.post("/v1/jobs", json=spec(), timeout=10)
        assert response.status_code == 202
        accepted.append(response.json()["id"])
    wait_until(
        lambda: any(
            (job := store.get_job(j, tenant=LOCAL_TENANT))["status"] == "running"
            and job["progress"]["step"] >= 0.2 * steps()
            for j in accepted
        ),
        timeout=60,
    )
    between_checkpoints(
        store,
        next(j for j in accepted if store.get_job(j, tenant=LOCAL_TENANT)["status"] == "running"),
    )
    interrupted = {j: store.get_job(j, tenant=LOCAL_TENANT)["attempt"] for j in accepted}
    interrupted = {
        j: attempt
        for j, attempt in interrupted.items()
        if store.get_job(j, tenant=LOCAL_TENANT)["status"] == "running"
    }
    everything = [first.pid, *descendants(first.pid)]
    for pid in everything:  # the supervisor first: nothing is started again
        os.kill(pid, signal.SIGKILL)
    first.wait()
    wait_until(lambda: all(exited(pid) for pid in everything), timeout=10)

    restarted = time.monotonic()
    second = run()
    try:
        resumed = resumed_times(store, interrupted, restarted)
        lost = 0
        for job_id in accepted:
            response = api.get(f"/v1/jobs/{job_id}", timeout=10)
            if response.status_code == 404:
                lost += 1
                continue
            job = wait_until(
                lambda job_id=job_id: (
                    (j := store.get_job(job_id, tenant=LOCAL_TENANT))["status"]
                    in ("succeeded", "failed", "cancelled")
                    and j
                ),
                timeout=120,
            )
            check_exact(api, job_id, job)
        assert lost == 0
        for job_id, seconds in resumed.items():
            assert seconds < 30
            rewound = int(store.redis.hget(store.keys.job(job_id), "rewound") or 0)
            record("whole stack kill -9 (from the restart)", seconds, rewound)
        RELIABILITY_FIGURES.append(f"acknowledged jobs lost in the whole-stack crash: {lost}")
    finally:
        second.send_signal(signal.SIGINT)
        assert second.wait(60) == 0


def resumed_times(store, attempts, since):
    """Seconds from `since` until each job (id -> its attempt then) runs again."""
    times = {}

    def all_resumed():
        for job_id, attempt in attempts.items():
            job = store.get_job(job_id, tenant=LOCAL_TENANT)
            if job_id not in times and job["attempt"] > attempt:
                times[job_id] = time.monotonic() - since
        return len(times) == len(attempts)

    wait_until(all_resumed, timeout=60, interval=0.01)
    return times
