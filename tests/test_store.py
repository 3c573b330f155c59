"""The store against a real redis-server: atomic creation, guarded status changes,
history batches, pagination cursors, idempotency under concurrency, and its keys."""

import threading
import time

import pytest

from service.errors import IdempotencyKeyReused, InvalidParameter
from service.store import GraphStore, JobStore, Keys, Report
from service.store.cursor import decode_cursor, encode_cursor

SPEC = {"steps": 10}


def nothing(pipe, job_id):
    """An enqueue that enqueues nothing (the store's part alone)."""


def make_job(store, spec=SPEC):
    return store.create_job(spec, nothing)[0]["id"]


def batch(*steps):
    return {
        "step": list(steps),
        "loss": [float(s) for s in steps],
        "accuracy": [None for _ in steps],
    }


PROGRESS, METRICS = {"step": 1, "steps": 10}, {"loss": 0.5, "accuracy": None}


def report(*steps, **parts):
    """A run's report of `steps` (and `parts`: a checkpoint, a model, an error)."""
    return Report(batch(*steps), PROGRESS, METRICS, **parts)


def test_create_job_writes_record_indexes_and_enqueue_in_one_transaction(store):
    def enqueue(pipe, job_id):
        pipe.rpush("test:queue", job_id)

    job, replayed = store.create_job(SPEC, enqueue)
    assert not replayed and job["status"] == "queued"
    assert store.get_job(job["id"]) == {**job, "attempt": 0}
    assert store.redis.lrange("test:queue", 0, -1) == [job["id"].encode()]
    assert store.redis.zscore(store.keys.jobs(), job["id"]) is not None
    assert store.redis.zscore(store.keys.jobs("queued"), job["id"]) is not None


def test_create_job_writes_nothing_when_the_enqueue_fails(store):
    def failing(pipe, job_id):
        raise ConnectionError("the queue is gone")

    with pytest.raises(ConnectionError):
        store.create_job(SPEC, failing)
    assert store.redis.dbsize() == 0


def test_start_counts_attempts_and_happens_once(store):
    job_id = make_job(store)
    run = store.start(job_id)
    assert run.attempt == 1 and len(run.token) == 16
    assert store.start(job_id) is None  # already taken
    job = store.get_job(job_id)
    assert job["status"] == "running" and job["started_at"] and job["attempt"] == 1
    assert store.redis.zscore(store.keys.jobs("queued"), job_id) is None
    assert store.redis.zscore(store.keys.jobs("running"), job_id) is not None


def test_progress_is_written_only_by_the_running_run(store):
    job_id = make_job(store)
    run = store.start(job_id)
    assert store.record(job_id, run.token, report(0, 1))
    assert not store.record(job_id, "another run", report(2))
    assert store.history(job_id)["step"] == [0, 1]
    assert store.get_job(job_id)["metrics"] == METRICS


def test_cancel_of_a_running_job_notifies_and_fences_later_writes(store):
    job_id = make_job(store)
    token = store.start(job_id).token
    store.record(job_id, token, report(0))
    with store.cancel_listener(job_id) as listener:
        assert not listener.cancelled()
        assert store.cancel(job_id) == (True, "running")
        # PUBLISH reaches the subscriber's socket asynchronously: give it a moment.
        deadline = time.monotonic() + 2.0
        while not listener.cancelled() and time.monotonic() < deadline:
            time.sleep(0.005)
        assert listener.cancelled()
    model = {"id": "f" * 32, "job_id": job_id}
    assert not store.record(job_id, token, report(1))
    assert not store.record(job_id, token, report(1, model=model))
    assert not store.record(job_id, token, report(1, error={"title": "x"}))
    job = store.get_job(job_id)
    assert job["status"] == "cancelled" and job["model_id"] is None and job["error"] is None
    assert store.history(job_id)["step"] == [0]
    assert store.get_model(model["id"]) is None


def test_terminal_statuses_never_change(store):
    job_id = make_job(store)
    token = store.start(job_id).token
    model = {"id": "e" * 32, "job_id": job_id, "parameters": [1.0]}
    assert store.record(job_id, token, report(0, model=model))
    assert store.cancel(job_id) == (False, "succeeded")
    assert not store.record(job_id, token, report(error={"title": "late"}))
    assert store.start(job_id) is None
    job = store.get_job(job_id)
    assert job["status"] == "succeeded" and job["model_id"] == model["id"]
    assert store.get_model(model["id"]) == model
    assert store.redis.zscore(store.keys.jobs("succeeded"), job_id) is not None
    assert store.redis.zscore(store.keys.jobs("running"), job_id) is None


def race_cancel_and_finish(store):
    """Cancel and complete one running job from two threads at once: who won?"""
    job_id = make_job(store)
    token = store.start(job_id).token
    model = {"id": "d" * 32, "job_id": job_id}
    results = {}

    def cancel():
        results["cancel"] = store.cancel(job_id)[0]

    def finish():
        results["finish"] = store.record(job_id, token, report(model=model))

    threads = [threading.Thread(target=cancel), threading.Thread(target=finish)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, store.get_job(job_id)["status"]


def test_a_race_of_cancel_and_finish_has_one_winner(store):
    for _ in range(20):
        results, status = race_cancel_and_finish(store)
        assert results["cancel"] != results["finish"]
        assert status == ("cancelled" if results["cancel"] else "succeeded")


def test_failure_keeps_the_history_and_the_problem(store):
    job_id = make_job(store)
    token = store.start(job_id).token
    store.record(job_id, token, report(0, 1))
    problem = {"title": "Training diverged", "step": 3}
    assert store.record(job_id, token, report(2, error=problem))
    job = store.get_job(job_id)
    assert job["status"] == "failed" and job["error"] == problem and job["finished_at"]
    assert store.history(job_id)["step"] == [0, 1, 2]


def test_history_batches_join_and_since_cuts_inside_a_batch(store):
    job_id = make_job(store)
    token = store.start(job_id).token
    for steps in ([0, 1, 2], [3, 4], [5]):
        assert store.record(job_id, token, report(*steps))
    assert store.history(job_id)["step"] == [0, 1, 2, 3, 4, 5]
    since = store.history(job_id, since=4)
    assert since == {"job_id": job_id, "step": [4, 5], "loss": [4.0, 5.0], "accuracy": [None, None]}
    assert store.history(job_id, since=99)["step"] == []
    assert store.redis.llen(store.keys.history(job_id)) == 3  # a write per batch


def test_checkpoint_is_stored_with_its_history(store):
    job_id = make_job(store)
    token = store.start(job_id).token
    checkpoint = {"version": 1, "step": 2, "parameters": [0.5]}
    assert store.record(job_id, token, report(0, 1, checkpoint=checkpoint, trained_seconds=0.5))
    assert store.checkpoint(job_id) == checkpoint
    assert store.history(job_id)["step"][-1] + 1 == checkpoint["step"]
    assert store.redis.hget(store.keys.job(job_id), "trained_seconds") == b"0.5"


def test_pages_are_newest_first_and_cursors_survive_equal_times(store):
    ids = [make_job(store) for _ in range(5)]
    for job_id in ids:  # the same creation time for all: ties broken by id
        store.redis.zadd(store.keys.jobs(), {job_id: 1_000_000})
    seen, cursor = [], None
    while True:
        page, cursor = store.list_jobs(2, cursor)
        seen += [job["id"] for job in page]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)


def test_cursor_round_trip_and_garbage():
    assert decode_cursor(encode_cursor(1234567.0, "a" * 32)) == (1234567, "a" * 32)
    for garbage in ("", "x", "bm90LWEtY3Vyc29y", encode_cursor(5, "not-an-id")):
        with pytest.raises(InvalidParameter):
            decode_cursor(garbage)


def test_idempotent_create_under_concurrency_makes_one_job(store):
    created, errors = [], []

    def submit():
        try:
            created.append(store.create_job(SPEC, nothing, ("key-1", "print", 60))[0]["id"])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(created)) == 1
    assert store.redis.zcard(store.keys.jobs()) == 1
    with pytest.raises(IdempotencyKeyReused):
        store.create_job(SPEC, nothing, ("key-1", "another print", 60))
    assert 0 < store.redis.ttl(store.keys.idempotency("key-1")) <= 60


def test_graphs_are_kept_for_their_time_to_live(redis_client):
    graphs = GraphStore(redis_client)
    graph_id = graphs.save_result('{"value":1.0}', ttl=30)
    assert graphs.get(graph_id) == ("succeeded", b'{"value":1.0}', None)
    assert 0 < redis_client.ttl(graphs.keys.graph(graph_id)) <= 30

    def enqueue(pipe, queued_id):
        pipe.rpush("test:queue", queued_id)

    queued = graphs.queue(b'{"nodes": []}', 30, enqueue)
    assert redis_client.lrange("test:queue", 0, -1) == [queued.encode()]
    assert graphs.get(queued)[0] == "queued"
    assert 0 < redis_client.ttl(graphs.keys.graph_doc(queued)) <= 30
    assert graphs.take(queued) == b'{"nodes": []}'
    assert graphs.get(queued)[0] == "running"
    assert graphs.take(queued) == b'{"nodes": []}'  # its worker died: taken again
    graphs.finish(queued, error={"title": "bad"})
    assert graphs.get(queued) == ("failed", None, {"title": "bad"})
    assert graphs.document(queued) == b'{"nodes": []}'  # kept to be drawn, as long as the rest
    assert 0 < redis_client.ttl(graphs.keys.graph_doc(queued)) <= 30
    assert graphs.take(queued) is None  # evaluated once: a second delivery does nothing
    assert graphs.get(queued)[0] == "failed"
    assert graphs.get("../etc") is None and graphs.document("../etc") is None


def test_a_graph_evaluated_in_the_request_keeps_its_document(redis_client):
    graphs = GraphStore(redis_client)
    graph_id = graphs.save_result('{"value":1.0}', ttl=30, document=b'{"nodes": [1]}')
    assert graphs.document(graph_id) == b'{"nodes": [1]}'
    assert 0 < redis_client.ttl(graphs.keys.graph_doc(graph_id)) <= 30


def test_every_key_is_under_the_prefix(redis_client):
    store = JobStore(redis_client, prefix="other")
    job_id = make_job(store)
    token = store.start(job_id).token
    assert store.record(job_id, token, report(0, checkpoint={"step": 1}))
    assert store.record(job_id, token, report(1, model={"id": "c" * 32}))
    store.create_job(SPEC, nothing, ("k", "p", 60))
    GraphStore(redis_client, prefix="other").save_result("{}", 60)
    keys = [k.decode() for k in redis_client.keys("*")]
    assert len(keys) >= 8 and all(k.startswith("other:") for k in keys)
    assert Keys("other").job(job_id) in keys
