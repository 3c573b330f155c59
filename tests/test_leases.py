"""Runs, leases, hand-backs and the reaper against the real Redis (and a real rq queue); the
fault-injection tests with real processes are in test_reliability."""

import threading
import time

import pytest

from engine.spec import normalize_spec
from engine.train import train
from service.config import load_config
from service.stack import redis_server
from service.store import HistoryMismatch, JobStore, Report
from service.store.queue import connect, make_queue, training_enqueuer
from service.worker import jobs
from service.worker.lease import Lease
from service.worker.reaper import Reaper
from service.worker.recorder import JobHandedBack, Pace, Recorder, Watch

from .service_helpers import TENANT, small_spec, wait_until

PROGRESS, METRICS = {"step": 0, "steps": 10}, {"loss": 0.5, "accuracy": None}
SPEC = small_spec(steps=60, engine="reference", optimizer={"name": "adam", "learning_rate": 0.05})


def batch(*steps):
    return {"step": list(steps), "loss": [float(s) for s in steps], "accuracy": [None] * len(steps)}


def report(*steps, **parts):
    return Report(batch(*steps), PROGRESS, METRICS, **parts)


@pytest.fixture
def config(worker_env):
    return load_config({"LEASE_TTL": 1.0, "REAPER_INTERVAL": 0.2, "MAX_LOST_RUNS": 2})


@pytest.fixture
def queue(redis_client, config):
    return make_queue(redis_client, config)


@pytest.fixture
def enqueue(queue):
    return training_enqueuer(queue)


@pytest.fixture
def reaper(store, queue, config):
    return Reaper(store, queue, config)


def queued_job(store, enqueue, spec=None):
    return store.create_job(normalize_spec(spec or {"steps": 10}), enqueue, tenant=TENANT)[0]["id"]


def hidden(store, job_id, name):
    value = store.redis.hget(store.keys.job(job_id), name)
    return None if value is None else value.decode()


def test_start_takes_the_lease_and_only_the_jobs_own_ticket_starts_it(store, enqueue, queue):
    job_id = queued_job(store, enqueue)
    ticket = queue.get_job_ids()[0]
    assert ticket == f"train-{job_id}" == hidden(store, job_id, "ticket")
    assert store.start(job_id, "train-someone-else", "w1", 5.0) is None  # superseded
    run = store.start(job_id, ticket, "w1", 5.0)
    assert run.attempt == 1 and run.checkpoint is None and run.spec["steps"] == 10
    lease = store.redis.get(store.keys.lease(job_id)).decode()
    assert lease == f"1 {run.token} w1"
    assert 4000 < store.redis.pttl(store.keys.lease(job_id)) <= 5000
    assert store.start(job_id, ticket, "w2", 5.0) is None  # taken
    assert store.start(job_id, ticket, "w1", 5.0, token=run.token) == run  # a retried start


def test_renewal_keeps_retakes_and_then_loses_the_lease(store, enqueue):
    job_id = queued_job(store, enqueue)
    run = store.start(job_id, owner="w1", lease_ttl=5.0)
    store.redis.delete(store.keys.lease(job_id))  # lapsed (Redis was unreachable)
    assert store.renew_lease(job_id, run, "w1", 5.0)
    assert store.redis.exists(store.keys.lease(job_id))
    store.cancel(job_id, tenant=TENANT)
    assert not store.renew_lease(job_id, run, "w1", 5.0)
    assert not store.redis.exists(store.keys.lease(job_id))  # leaving running gives it up


def test_a_run_token_fences_writes_even_with_the_same_attempt_number(store, enqueue):
    # Redis rolled back (a crash between two syncs) can hand the same attempt number out
    # twice; the token tells the two runs apart.
    job_id = queued_job(store, enqueue)
    run = store.start(job_id)
    assert store.record(job_id, run.token, report(0))
    assert not store.record(job_id, "other", report(1))
    assert store.history(job_id, tenant=TENANT)["step"] == [0]


def test_a_batch_must_continue_the_stored_history(store, enqueue):
    job_id = queued_job(store, enqueue)
    run = store.start(job_id)
    assert store.record(job_id, run.token, report(0, 1, 2))
    with pytest.raises(HistoryMismatch) as behind:  # steps 3 and 4 never arrived
        store.record(job_id, run.token, report(5, 6))
    assert behind.value.behind and behind.value.recorded == 3
    with pytest.raises(HistoryMismatch) as ahead:  # a retried write that had gone through
        store.record(job_id, run.token, report(2, 3))
    assert not ahead.value.behind and ahead.value.recorded == 3
    assert store.history(job_id, tenant=TENANT)["step"] == [0, 1, 2]


def test_a_recorder_cuts_a_batch_redis_already_has_part_of(store, enqueue):
    job_id = queued_job(store, enqueue)
    run = store.start(job_id)
    store.record(job_id, run.token, report(0, 1))
    with store.cancel_listener(job_id) as cancel:
        recorder = Recorder(store, job_id, run, Pace(1.0, 1.0), Watch(cancel))
        recorder.batch = batch(0, 1, 2, 3)  # it believes the first write failed
        recorder.flush()
    assert store.history(job_id, tenant=TENANT)["step"] == [0, 1, 2, 3]


def test_a_recorder_keeps_its_steps_while_redis_is_unreachable(store, enqueue):
    job_id = queued_job(store, enqueue)
    run = store.start(job_id)
    dead = JobStore(connect(redis_server.url(redis_server.free_port()), timeout=0.2))
    with store.cancel_listener(job_id) as cancel:
        recorder = Recorder(dead, job_id, run, Pace(0.0, 1.0), Watch(cancel))
        recorder.batch = batch(0, 1)
        recorder.flush()  # refused connection: kept for the next flush
        assert recorder.batch == batch(0, 1) and recorder.unreachable
        recorder.store = store  # Redis is back
        recorder.batch = batch(0, 1, 2)
        recorder.flush()
    assert store.history(job_id, tenant=TENANT)["step"] == [0, 1, 2] and not recorder.unreachable


def write_run(store, job_id, run, checkpoint_at, until):
    """Steps 0..until-1 recorded by `run`, with a checkpoint at step `checkpoint_at`."""
    ck = {"version": 1, "step": checkpoint_at, "parameters": [0.0]}
    progress = {"step": checkpoint_at, "steps": 10}
    first = Report(batch(*range(checkpoint_at)), progress, METRICS, checkpoint=ck)
    assert store.record(job_id, run.token, first)
    more = batch(*range(checkpoint_at, until))
    assert store.record(job_id, run.token, Report(more, {"step": until, "steps": 10}, METRICS))
    return ck


def test_a_lost_run_is_handed_back_rewound_to_its_checkpoint(store, enqueue, queue, reaper):
    job_id = queued_job(store, enqueue)
    queue.empty()
    run = store.start(job_id, lease_ttl=5.0)
    ck = write_run(store, job_id, run, checkpoint_at=4, until=7)
    assert reaper.run_once().requeued == []  # the lease is alive
    store.redis.delete(store.keys.lease(job_id))  # its worker is gone
    assert reaper.run_once().requeued == [job_id]
    job = store.get_job(job_id, tenant=TENANT)
    assert job["status"] == "queued" and job["progress"]["step"] == 4
    assert store.history(job_id, tenant=TENANT)["step"] == [0, 1, 2, 3]
    assert hidden(store, job_id, "rewound") == "3"
    assert queue.get_job_ids() == [f"train-{job_id}-1"] == [hidden(store, job_id, "ticket")]
    assert not store.record(job_id, run.token, report(4))
    resumed = store.start(job_id, f"train-{job_id}-1")
    assert resumed.attempt == 2 and resumed.checkpoint == ck
    assert hidden(store, job_id, "run_from") == "4"


def test_reapers_in_many_workers_hand_a_job_back_once(store, enqueue, queue, config, redis_url):
    job_id = queued_job(store, enqueue)
    queue.empty()
    store.start(job_id, lease_ttl=5.0)
    store.redis.delete(store.keys.lease(job_id))  # its worker is gone
    passes = []

    def reap():  # each worker has its own connection
        connection = connect(redis_url)
        reaper = Reaper(JobStore(connection), make_queue(connection, config), config)
        passes.append(reaper.run_once())

    threads = [threading.Thread(target=reap) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(len(p.requeued) for p in passes) == 1
    assert queue.get_job_ids() == [f"train-{job_id}-1"]


def test_a_job_lost_again_and_again_without_progress_fails(store, enqueue, queue, reaper):
    job_id = queued_job(store, enqueue)
    for attempt in (1, 2, 3):
        run = store.start(job_id, lease_ttl=5.0)
        assert run.attempt == attempt
        store.redis.delete(store.keys.lease(job_id))
        outcome = reaper.run_once()
        assert (outcome.requeued, outcome.failed) == (
            ([job_id], []) if attempt < 3 else ([], [job_id])
        )
    job = store.get_job(job_id, tenant=TENANT)
    assert job["status"] == "failed" and job["error"]["type"].endswith("worker-lost")
    assert "3 times" in job["error"]["detail"] and job["finished_at"]


def test_a_checkpoint_resets_the_count_of_lost_runs(store, enqueue, reaper):
    job_id = queued_job(store, enqueue)
    for step in range(4):  # each run gets one step further, and checkpoints, before it dies
        run = store.start(job_id, lease_ttl=5.0)
        ck = {"version": 1, "step": step + 1, "parameters": [0.0]}
        assert store.record(job_id, run.token, report(step, checkpoint=ck))
        store.redis.delete(store.keys.lease(job_id))
        assert reaper.run_once().requeued == [job_id]
    assert store.get_job(job_id, tenant=TENANT)["status"] == "queued"
    assert store.history(job_id, tenant=TENANT)["step"] == [0, 1, 2, 3]


def test_only_the_dead_horses_worker_hands_its_job_back_at_once(store, enqueue, reaper):
    job_id = queued_job(store, enqueue)
    store.start(job_id, owner="host.1", lease_ttl=30.0)
    assert reaper.lost(job_id, owner="host.2") is None  # not its job
    assert reaper.lost(job_id, owner="host.1") == "queued"


def test_a_cancelled_jobs_dead_horse_hands_nothing_back(store, enqueue, queue, reaper):
    """A cancel kills the running job's horse; its worker's hand-back of a dead horse's job
    (GradserveWorker.handle_work_horse_killed) then neither queues nor fails the job."""
    job_id = queued_job(store, enqueue)
    queue.empty()
    run = store.start(job_id, owner="host.1", lease_ttl=30.0)
    assert store.record(job_id, run.token, report(0, 1))
    assert store.cancel(job_id, tenant=TENANT) == (True, "running")
    assert reaper.lost(job_id, owner="host.1") is None
    assert reaper.run_once() == ([], [], [], [])
    job = store.get_job(job_id, tenant=TENANT)
    assert job["status"] == "cancelled" and job["error"] is None
    assert store.history(job_id, tenant=TENANT)["step"] == [0, 1] and queue.get_job_ids() == []
    assert store.redis.exists(store.keys.lease(job_id)) == 0


def test_a_queued_job_whose_rq_job_vanished_gets_a_new_one(store, enqueue, queue, reaper):
    job_id = queued_job(store, enqueue)
    queue.empty()  # a worker took it and died before starting it
    reaper.grace = 0.2
    sighted = time.monotonic()
    assert reaper.run_once().stranded == []  # first sighting
    assert wait_until(lambda: reaper.run_once().stranded, timeout=5) == [job_id]
    assert time.monotonic() - sighted >= reaper.grace  # not before its grace period
    assert queue.get_job_ids() == [f"train-{job_id}-1"]
    assert store.start(job_id, f"train-{job_id}") is None  # the old ticket is void
    assert store.start(job_id, f"train-{job_id}-1").attempt == 1


def test_a_queued_job_waiting_in_the_queue_is_left_alone(store, enqueue, queue, reaper):
    job_id = queued_job(store, enqueue)
    reaper.grace = 0.0
    assert reaper.run_once() == ([], [], [], [])
    assert reaper.run_once() == ([], [], [], [])
    assert queue.get_job_ids() == [f"train-{job_id}"]


def test_a_lease_thread_renews_and_notices_a_cancel(store, enqueue):
    job_id = queued_job(store, enqueue)
    run = store.start(job_id, owner="w", lease_ttl=0.3)
    ttls = []

    def renewed():  # its time to live went up again
        ttls.append(store.redis.pttl(store.keys.lease(job_id)))
        return len(ttls) > 1 and ttls[-1] > ttls[-2]

    with Lease(store, job_id, run, "w", 0.3) as lease:
        wait_until(renewed, timeout=2, interval=0.01)
        assert not lease.lost.is_set()
        store.cancel(job_id, tenant=TENANT)
        wait_until(lease.lost.is_set, timeout=2)


def resumable_job(store, enqueue, queue, stop_after, spec=SPEC):
    """A job whose first run wrote its history and checkpoints (every 5 steps) up to
    `stop_after` steps and then died; handed back by the reaper's logic."""
    spec = normalize_spec(spec)
    job_id = store.create_job(spec, enqueue, tenant=TENANT)[0]["id"]
    queue.empty()
    run = store.start(job_id, lease_ttl=5.0)
    steps = {"step": [], "loss": [], "accuracy": []}

    def on_step(progress):
        for name, value in (
            ("step", progress.step),
            ("loss", progress.loss),
            ("accuracy", progress.accuracy),
        ):
            steps[name].append(value)
        if progress.step + 1 == stop_after:
            raise KeyboardInterrupt  # the worker dies here
        if (progress.step + 1) % 5 == 0 or progress.step + 1 == stop_after - 2:
            checkpoint = progress.checkpoint() if (progress.step + 1) % 5 == 0 else None
            at = {"step": progress.step + 1, "steps": 60}
            written = Report(dict(steps), at, METRICS, checkpoint=checkpoint)
            assert store.record(job_id, run.token, written)
            steps.update(step=[], loss=[], accuracy=[])

    with pytest.raises(KeyboardInterrupt):
        train(spec, on_step=on_step)
    store.redis.delete(store.keys.lease(job_id))
    return job_id, spec


def test_run_training_resumes_exactly_from_the_checkpoint(store, enqueue, queue, reaper, config):
    job_id, spec = resumable_job(store, enqueue, queue, stop_after=23)
    assert store.history(job_id, tenant=TENANT)["step"] == list(
        range(21)
    )  # 20 checkpointed, 21 flushed
    assert reaper.run_once().requeued == [job_id]
    assert store.history(job_id, tenant=TENANT)["step"] == list(range(20))
    jobs.run_training(job_id)
    expected = train(spec)
    job = store.get_job(job_id, tenant=TENANT)
    assert job["status"] == "succeeded" and job["attempt"] == 2
    history = store.history(job_id, tenant=TENANT)
    assert history["step"] == list(range(60))
    assert history["loss"] == expected.loss and history["accuracy"] == expected.accuracy
    assert store.get_model(job["model_id"], tenant=TENANT)["parameters"] == expected.parameters
    assert hidden(store, job_id, "rewound") == "1" and hidden(store, job_id, "run_from") == "20"


def test_a_hand_back_checkpoints_at_the_step_and_requeues(store, enqueue, queue, config):
    spec = normalize_spec(SPEC)
    job_id = store.create_job(spec, enqueue, tenant=TENANT)[0]["id"]
    queue.empty()
    run = store.start(job_id)
    with store.cancel_listener(job_id) as cancel, Lease(store, job_id, run, "", 5.0) as lease:
        flag = threading.Event()
        recorder = Recorder(
            store, job_id, run, Pace(0.0, 100.0), Watch(cancel, lease, flag, enqueue)
        )

        def on_step(progress):
            if progress.step == 12:
                flag.set()  # SIGTERM
            recorder(progress)

        with pytest.raises(JobHandedBack):
            train(spec, on_step=on_step)
    job = store.get_job(job_id, tenant=TENANT)
    assert job["status"] == "queued" and job["progress"]["step"] == 13
    assert store.checkpoint(job_id)["step"] == 13
    assert store.history(job_id, tenant=TENANT)["step"] == list(range(13))
    assert queue.get_job_ids() == [f"train-{job_id}-1"]
    assert hidden(store, job_id, "rewound") == "0"


def test_a_job_times_out_over_all_its_runs(store, enqueue, queue):
    timed = {**SPEC, "timeout": 3}
    job_id, spec = resumable_job(store, enqueue, queue, stop_after=23, spec=timed)
    store.redis.hset(store.keys.job(job_id), "cp_seconds", "3.0")  # its first run used it all
    Reaper(store, queue, load_config({"LEASE_TTL": 1.0})).run_once()
    started = time.monotonic()
    jobs.run_training(job_id)
    job = store.get_job(job_id, tenant=TENANT)
    assert job["status"] == "failed"
    assert job["error"]["type"] == "tag:gradserve,2026:problem/timeout"
    assert "timeout of 3 s" in job["error"]["detail"] and job["error"]["timeout"] == 3
    assert time.monotonic() - started < 2.0  # at its first step
    assert store.history(job_id, tenant=TENANT)["step"] == list(range(21))


def test_a_job_without_a_timeout_in_its_spec_has_the_default(store, enqueue, queue, monkeypatch):
    monkeypatch.setenv("GRADSERVE_JOB_TIMEOUT_DEFAULT", "3")  # a spec from before the field
    job_id, spec = resumable_job(store, enqueue, queue, stop_after=23)
    assert spec["timeout"] is None
    store.redis.hset(store.keys.job(job_id), "cp_seconds", "3.5")
    Reaper(store, queue, load_config({"LEASE_TTL": 1.0})).run_once()
    jobs.run_training(job_id)
    job = store.get_job(job_id, tenant=TENANT)
    assert job["status"] == "failed" and job["error"]["type"].endswith("/timeout")


def test_runs_racing_to_start_one_job_have_one_winner(store, enqueue, queue, redis_url):
    job_id = queued_job(store, enqueue)
    ticket = queue.get_job_ids()[0]
    runs = []

    def start():  # a worker each, with its own connection
        runs.append(JobStore(connect(redis_url)).start(job_id, ticket, "w", 5.0))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    started = [run for run in runs if run is not None]
    assert len(started) == 1 and started[0].attempt == 1
    assert store.get_job(job_id, tenant=TENANT)["attempt"] == 1
