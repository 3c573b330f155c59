"""No job runs away with a worker, and a worker runs nothing but gradserve's job functions:
a real `python -m service.worker` process against the real Redis. A queue entry naming any
other function (or callbacks, or dependencies) is refused and logged, and creates nothing;
a cancel kills the work-horse inside one long step within 2 s; a timeout ends a job inside
one long step; after each, the worker takes the next job."""

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
from rq.callbacks import Callback
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer

from engine.spec import normalize_spec
from service.config import limits, load_config
from service.store.queue import TRAIN, connect, make_queue, training_enqueuer
from service.worker.main import GradserveWorker

from .service_helpers import TENANT, exited, long_spec, small_spec, wait_until

pytestmark = pytest.mark.e2e

SETTINGS = {"GRADSERVE_LEASE_TTL": "2", "GRADSERVE_REAPER_INTERVAL": "0.5"}
# One long step: 2-256-256-1 (66,817 parameters) on 200,000 samples. Its program comes
# compiled from the worker, so the step is all the time: 4 s to 20 s here (40,000 samples
# took under 1 s, short enough for the horse to reach its next step before the kill).
LONG_STEPS = {
    "model": {"inputs": 2, "layers": [256, 256, 1]},
    "dataset": {"name": "moons", "samples": 200_000},
    "steps": 50,
}
WORK_CAP = 66_817 * 200_000 * 50  # the test's cap: the long job is admitted, just
TWO_LONG_STEPS = 90  # seconds to wait for two of them on a busy machine


class Worker:
    """A worker process, its log, and what it runs."""

    def __init__(self, redis_url, directory):
        self.log_path = directory / "worker.log"
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        env = {**os.environ, **SETTINGS, "REDIS_URL": redis_url}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "service.worker", "--name", f"guard.{os.getpid()}"],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def horse(self):
        """The work-horse's pid (its only child), once it has one."""
        return psutil.Process(self.process.pid).children()[0].pid

    def text(self):
        return self.log_path.read_text()

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


@pytest.fixture
def worker(redis_client, redis_url, tmp_path):
    running = Worker(redis_url, tmp_path)
    wait_until(lambda: redis_client.smembers("rq:workers"), timeout=20)
    yield running
    running.stop()
    assert running.process.returncode == 0, running.text()[-4000:]  # why it did not stop


@pytest.fixture
def queue(redis_client):
    return make_queue(redis_client, load_config())


def submit(store, queue, spec, **config):
    """A job as the API queues it (its spec judged with the limits of `config`)."""
    normalized = normalize_spec(spec, limits(load_config(config)))
    return store.create_job(normalized, training_enqueuer(queue), tenant=TENANT)[0]["id"]


def cpu_seconds(process, over):
    """CPU time `process` spends in the next `over` seconds."""
    before = sum(process.cpu_times()[:2])
    time.sleep(over)
    return sum(process.cpu_times()[:2]) - before


DONE = (JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED)


def job_of(store, job_id):
    return store.get_job(job_id, tenant=TENANT)


def finished(store, job_id, timeout=30):
    done = ("succeeded", "failed", "cancelled")
    return wait_until(lambda: (job := job_of(store, job_id))["status"] in done and job, timeout)


def test_a_queue_entry_naming_another_function_is_refused_and_logged(
    worker, store, queue, redis_client, tmp_path
):
    made = tmp_path / "made"

    def raw(rq_id, data, **fields):
        """An entry written with redis-py straight into rq's structures."""
        redis_client.hset(
            f"rq:job:{rq_id}",
            mapping={
                "data": json.dumps(data),
                "status": "queued",
                "origin": queue.name,
                "created_at": "2026-01-01T00:00:00.000000Z",
                **fields,
            },
        )
        redis_client.rpush(queue.key, rq_id)
        return rq_id

    evil = [
        queue.enqueue("os.makedirs", str(made / "by-name")).id,
        # gradserve's own function, but naming a callback rq would import and call
        queue.enqueue(TRAIN, "0" * 32, on_failure=Callback("os.makedirs")).id,
        raw("raw", ["os.makedirs", None, [str(made / "raw")], {}]),
        # gradserve's own function, depending on another rq job
        raw("dependent", [TRAIN, None, ["1" * 32], {}], dependency_ids='["other"]'),
    ]
    job_id = submit(store, queue, small_spec())  # a real job behind them

    assert finished(store, job_id)["status"] == "succeeded"
    assert not made.exists()
    assert set(FailedJobRegistry(queue=queue).get_job_ids()) == set(evil)
    log = worker.text()
    for rq_id in evil:
        assert f"refused rq job {rq_id}" in log
        job = Job.fetch(rq_id, connection=redis_client, serializer=queue.serializer)
        assert job.get_status() == JobStatus.FAILED
        assert "refused" in job.latest_result().exc_string
    assert "it names 'os.makedirs', not one of gradserve's job functions" in log
    assert "it names callbacks {'failure': 'os.makedirs'}" in log
    assert "it depends on rq jobs ['other']" in log
    assert worker.process.poll() is None  # serving on


def rq_status(store, queue, job_id):
    """The status of the rq job that ran `job_id` (its ticket)."""
    ticket = store.redis.hget(store.keys.job(job_id), "ticket").decode()
    return Job.fetch(ticket, connection=store.redis, serializer=queue.serializer).get_status()


def rq_ended(store, queue, job_id):
    """The status the rq job of `job_id` ends with, once it has one."""
    return wait_until(lambda: (now := rq_status(store, queue, job_id)) in DONE and now)


def test_cancel_stops_the_horse_inside_one_long_step_within_2_s(worker, store, queue):
    job_id = submit(store, queue, LONG_STEPS, MAX_JOB_WORK=WORK_CAP)
    running = wait_until(
        lambda: (job := job_of(store, job_id))["progress"]["step"] >= 1 and job, TWO_LONG_STEPS
    )
    assert running["status"] == "running"  # step 0 is stored: the horse is in step 1
    horse = psutil.Process(worker.horse())
    assert cpu_seconds(horse, 0.5) > 0.05  # computing

    store.cancel(job_id, tenant=TENANT)
    cancelled = time.monotonic()
    at_cancel = job_of(store, job_id)["progress"]["step"]  # the horse may have just recorded
    wait_until(lambda: exited(horse.pid), timeout=2, interval=0.01)
    stopped_in = time.monotonic() - cancelled
    assert stopped_in < 2.0

    time.sleep(1.0)  # whatever the worker does after its horse died, it is done by now
    job = job_of(store, job_id)
    assert job["status"] == "cancelled" and job["progress"]["step"] == at_cancel  # nothing after
    assert store.history(job_id, tenant=TENANT)["step"] == list(range(job["progress"]["step"]))
    assert queue.get_job_ids() == []  # nothing handed back
    assert rq_ended(store, queue, job_id) == JobStatus.STOPPED  # on request, not a crash
    log = worker.text()
    assert f"job {job_id} was cancelled: stopping its work-horse" in log
    assert f"job {job_id}: stopped (cancelled" not in log  # killed, not at its next step

    after = submit(store, queue, small_spec())
    assert finished(store, after)["status"] == "succeeded"
    print(f"\ncancel inside a long step: the horse stopped in {stopped_in:.2f} s")


def test_a_cancel_the_horse_sees_between_two_steps_stops_its_rq_job_too(worker, store, queue):
    # steps of a millisecond: the horse sees the cancel at its next step, before the
    # worker's watch (a look every 0.1 s) kills it; rq must record the same either way
    job_id = submit(store, queue, long_spec())
    wait_until(lambda: job_of(store, job_id)["progress"]["step"] >= 1)
    horse = worker.horse()

    store.cancel(job_id, tenant=TENANT)
    at_cancel = job_of(store, job_id)["progress"]["step"]
    wait_until(lambda: exited(horse), timeout=2, interval=0.01)
    assert rq_ended(store, queue, job_id) == JobStatus.STOPPED  # not finished: it did not end
    job = job_of(store, job_id)
    assert job["status"] == "cancelled" and job["progress"]["step"] == at_cancel
    assert store.history(job_id, tenant=TENANT)["step"] == list(range(at_cancel))
    assert "Traceback" not in worker.text()  # a cancel, not an error

    after = submit(store, queue, small_spec())
    assert finished(store, after)["status"] == "succeeded"
    assert rq_ended(store, queue, after) == JobStatus.FINISHED  # rq records it after the job


def test_a_timeout_ends_a_job_inside_one_long_step(worker, store, queue):
    # setting up takes a blink, a step 4 s or more: past 4 s it is computing, far from done
    longer = {**LONG_STEPS, "steps": 10}
    job_id = submit(store, queue, {**longer, "timeout": 4}, MAX_JOB_WORK=WORK_CAP)
    started = time.monotonic()
    wait_until(lambda: job_of(store, job_id)["status"] == "running")
    horse = worker.horse()
    job = finished(store, job_id, timeout=10)
    took = time.monotonic() - started
    assert job["status"] == "failed"
    assert job["error"]["type"] == "tag:gradserve,2026:problem/timeout"
    assert job["error"]["timeout"] == 4 and "timeout of 4 s" in job["error"]["detail"]
    assert took < 4 + 1 + 3  # the timeout, the grace, and time to start and write
    wait_until(lambda: exited(horse), timeout=2)
    assert store.history(job_id, tenant=TENANT)["step"] == list(range(job["progress"]["step"]))
    assert job["progress"]["step"] <= 1  # a step takes seconds
    print(f"\ntimeout of 4 s inside a long step: failed after {took:.2f} s")

    after = submit(store, queue, small_spec())
    assert finished(store, after)["status"] == "succeeded"
    assert job_of(store, job_id)["status"] == "failed"  # the dead horse handed nothing back


def test_a_reply_left_unread_by_the_warm_shutdown_does_not_break_the_worker_s_last_words(
    redis_client, redis_url
):
    """rq's warm shutdown raises from its signal handler, anywhere: between a command's send
    and its read it leaves a reply to come on a pooled connection (here a BLPOP's, as when
    the worker waited for jobs). The worker's teardown (rq's register_death, a MULTI) then
    read that reply as its own and the worker exited 1, now and then, in this file's tests."""
    connection = connect(redis_url)
    worker = GradserveWorker(
        [make_queue(connection, load_config())],
        connection=connection,
        serializer=JSONSerializer,
        config=load_config(),
        name="teardown-test",
    )
    worker.register_birth()
    sent = connection.connection_pool.get_connection()
    sent.send_command("BLPOP", "gradserve-test:nothing", 1)  # its reply comes in a second
    connection.connection_pool.release(sent)
    worker.teardown()
    assert b"teardown-test" not in {
        name.split(b":")[-1] for name in redis_client.smembers("rq:workers")
    }
