"""The store against a real redis-server: atomic creation, guarded status changes,
history batches, pagination cursors, idempotency under concurrency, and its keys."""

import json
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import evaluate
from engine.columns import columns_of
from engine.compiled.evaluate import result_json
from service.errors import IdempotencyKeyReused, InvalidParameter
from service.store import (
    ApiKeys,
    Budget,
    GraphStore,
    JobStore,
    Keys,
    RateCounts,
    Report,
    WebhookSecrets,
)
from service.store import checkpoint as checkpoints
from service.store.cursor import decode_cursor, encode_cursor
from service.store.graphs import summary_json
from service.strictjson import fast_dumps

from .service_helpers import MICROGRAD_GRAPH, TENANT

SPEC = {"steps": 10}
ID_CHARACTERS = "aZ09_.:-"
"""Some of each kind of character graph/1 allows in an id."""


def nothing(pipe, job_id):
    """An enqueue that enqueues nothing (the store's part alone)."""


def make_job(store, spec=SPEC):
    return store.create_job(spec, nothing, tenant=TENANT)[0]["id"]


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

    job, replayed = store.create_job(SPEC, enqueue, tenant=TENANT)
    assert not replayed and job["status"] == "queued"
    assert store.get_job(job["id"], tenant=TENANT) == {**job, "attempt": 0}
    assert store.redis.lrange("test:queue", 0, -1) == [job["id"].encode()]
    assert store.redis.zscore(store.keys.jobs(), job["id"]) is not None
    assert store.redis.zscore(store.keys.jobs("queued"), job["id"]) is not None


def test_create_job_writes_nothing_when_the_enqueue_fails(store):
    def failing(pipe, job_id):
        raise ConnectionError("the queue is gone")

    with pytest.raises(ConnectionError):
        store.create_job(SPEC, failing, tenant=TENANT)
    assert store.redis.dbsize() == 0


def test_start_counts_attempts_and_happens_once(store):
    job_id = make_job(store)
    run = store.start(job_id)
    assert run.attempt == 1 and len(run.token) == 16
    assert store.start(job_id) is None  # already taken
    job = store.get_job(job_id, tenant=TENANT)
    assert job["status"] == "running" and job["started_at"] and job["attempt"] == 1
    assert store.redis.zscore(store.keys.jobs("queued"), job_id) is None
    assert store.redis.zscore(store.keys.jobs("running"), job_id) is not None


def test_progress_is_written_only_by_the_running_run(store):
    job_id = make_job(store)
    run = store.start(job_id)
    assert store.record(job_id, run.token, report(0, 1))
    assert not store.record(job_id, "another run", report(2))
    assert store.history(job_id, tenant=TENANT)["step"] == [0, 1]
    assert store.get_job(job_id, tenant=TENANT)["metrics"] == METRICS


def test_cancel_of_a_running_job_notifies_and_fences_later_writes(store):
    job_id = make_job(store)
    token = store.start(job_id).token
    store.record(job_id, token, report(0))
    with store.cancel_listener(job_id) as listener:
        assert not listener.cancelled()
        assert store.cancel(job_id, tenant=TENANT) == (True, "running")
        # PUBLISH reaches the subscriber's socket asynchronously: give it a moment.
        deadline = time.monotonic() + 2.0
        while not listener.cancelled() and time.monotonic() < deadline:
            time.sleep(0.005)
        assert listener.cancelled()
    model = {"id": "f" * 32, "job_id": job_id}
    assert not store.record(job_id, token, report(1))
    assert not store.record(job_id, token, report(1, model=model))
    assert not store.record(job_id, token, report(1, error={"title": "x"}))
    job = store.get_job(job_id, tenant=TENANT)
    assert job["status"] == "cancelled" and job["model_id"] is None and job["error"] is None
    assert store.history(job_id, tenant=TENANT)["step"] == [0]
    assert store.get_model(model["id"], tenant=TENANT) is None


def test_terminal_statuses_never_change(store):
    job_id = make_job(store)
    token = store.start(job_id).token
    model = {"id": "e" * 32, "job_id": job_id, "parameters": [1.0]}
    assert store.record(job_id, token, report(0, model=model))
    assert store.cancel(job_id, tenant=TENANT) == (False, "succeeded")
    assert not store.record(job_id, token, report(error={"title": "late"}))
    assert store.start(job_id) is None
    job = store.get_job(job_id, tenant=TENANT)
    assert job["status"] == "succeeded" and job["model_id"] == model["id"]
    assert store.get_model(model["id"], tenant=TENANT) == model
    assert store.redis.zscore(store.keys.jobs("succeeded"), job_id) is not None
    assert store.redis.zscore(store.keys.jobs("running"), job_id) is None


def race_cancel_and_finish(store):
    """Cancel and complete one running job from two threads at once: who won?"""
    job_id = make_job(store)
    token = store.start(job_id).token
    model = {"id": "d" * 32, "job_id": job_id}
    results = {}

    def cancel():
        results["cancel"] = store.cancel(job_id, tenant=TENANT)[0]

    def finish():
        results["finish"] = store.record(job_id, token, report(model=model))

    threads = [threading.Thread(target=cancel), threading.Thread(target=finish)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, store.get_job(job_id, tenant=TENANT)["status"]


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
    job = store.get_job(job_id, tenant=TENANT)
    assert job["status"] == "failed" and job["error"] == problem and job["finished_at"]
    assert store.history(job_id, tenant=TENANT)["step"] == [0, 1, 2]


def test_history_batches_join_and_since_cuts_inside_a_batch(store):
    job_id = make_job(store)
    token = store.start(job_id).token
    for steps in ([0, 1, 2], [3, 4], [5]):
        assert store.record(job_id, token, report(*steps))
    assert store.history(job_id, tenant=TENANT)["step"] == [0, 1, 2, 3, 4, 5]
    since = store.history(job_id, since=4, tenant=TENANT)
    assert since == {
        "job_id": job_id,
        "step": [4, 5],
        "loss": [4.0, 5.0],
        "accuracy": [None, None],
        "next_since": None,
    }
    assert store.history(job_id, since=99, tenant=TENANT)["step"] == []
    assert store.redis.llen(store.keys.history(job_id)) == 3  # a write per batch


def test_history_pages_are_the_slices_of_the_whole_and_chain_to_the_end(store):
    job_id = make_job(store, {"steps": 100})
    token = store.start(job_id).token
    sizes, first = [1, 7, 2, 13, 1, 1, 30, 5], 0
    for size in sizes:  # batches of uneven sizes, as flushes make them
        assert store.record(job_id, token, report(*range(first, first + size)))
        first += size
    whole = store.history(job_id, tenant=TENANT)
    assert whole["step"] == list(range(first)) and whole["next_since"] is None
    for since in range(first + 2):
        for limit in (1, 2, 3, 6, 13, 29, 60, 100):
            page = store.history(job_id, since, limit, tenant=TENANT)
            assert page["step"] == whole["step"][since : since + limit], (since, limit)
            assert page["loss"] == whole["loss"][since : since + limit]
            more = since + limit < first
            assert page["next_since"] == (since + limit if more else None), (since, limit)
    pages, since = [], 0
    while since is not None:  # following next_since from 0 gives the whole, once
        page = store.history(job_id, since, 4, tenant=TENANT)
        pages += page["step"]
        since = page["next_since"]
    assert pages == whole["step"]
    assert store.history(make_job(store), 0, 10, tenant=TENANT)["step"] == []  # no history yet


def test_history_pages_read_only_the_batches_they_need(store):
    job_id = make_job(store, {"steps": 10_000})
    token = store.start(job_id).token
    for first in range(0, 10_000, 100):  # 100 batches of 100 steps
        assert store.record(job_id, token, report(*range(first, first + 100)))
    batches, more = store.scripts.history_page(keys=[store.keys.history(job_id)], args=[5_050, 150])
    assert len(batches) == 2 and more == 1  # steps 5,000 to 5,199: two batches, not 100
    page = store.history(job_id, 5_050, 150, tenant=TENANT)
    assert page["step"] == list(range(5_050, 5_200)) and page["next_since"] == 5_200


def test_checkpoint_is_stored_with_its_history(store):
    job_id = make_job(store)
    token = store.start(job_id).token
    checkpoint = {"version": 1, "step": 2, "parameters": [0.5]}
    assert store.record(job_id, token, report(0, 1, checkpoint=checkpoint, trained_seconds=0.5))
    assert store.checkpoint(job_id) == checkpoint
    assert store.redis.get(store.keys.checkpoint(job_id)).startswith(checkpoints.MAGIC)
    assert store.history(job_id, tenant=TENANT)["step"][-1] + 1 == checkpoint["step"]
    assert store.redis.hget(store.keys.job(job_id), "trained_seconds") == b"0.5"


CHECKPOINTS = [
    {"version": 1, "step": 2, "parameters": [0.5, -1e-300, 1 / 3]},
    {
        "version": 1,
        "step": 7,
        "parameters": np.array([0.1, 2.5e300, -0.0]),
        "optimizer": {"name": "adam", "t": 7, "m": np.arange(3.0) / 7, "v": np.zeros(3)},
    },
    {"version": 1, "step": 1, "parameters": [], "optimizer": {"name": "sgd", "velocity": None}},
]


@pytest.mark.parametrize("checkpoint", CHECKPOINTS)
def test_a_checkpoint_round_trips_bit_for_bit(checkpoint):
    data = checkpoints.encode(checkpoint)
    assert data.startswith(checkpoints.MAGIC)
    back = checkpoints.decode(data)

    def same(a, b):
        if isinstance(a, dict):
            return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
        if isinstance(a, np.ndarray):  # arrays stay arrays, with the very same bits
            return isinstance(b, np.ndarray) and a.tobytes() == b.tobytes()
        return type(a) is type(b) and a == b

    assert same(checkpoint, back)


def test_a_checkpoint_is_raw_float64_bytes_not_json_text():
    vector = np.random.default_rng(0).standard_normal(300_000)
    state = {"version": 1, "step": 9, "parameters": vector, "optimizer": {"m": vector}}
    data = checkpoints.encode(state)
    assert 2 * 8 * 300_000 <= len(data) < 2 * 8 * 300_000 + 200
    as_lists = checkpoints.encode({**state, "parameters": vector.tolist()})
    assert abs(len(as_lists) - len(data)) < 10  # lists of floats are stored as bytes too


def test_a_json_checkpoint_of_an_older_version_still_reads():
    assert checkpoints.decode(b'{"version":1,"step":3,"parameters":[0.5]}')["step"] == 3


@pytest.mark.parametrize(
    "data",
    [
        b"pickle",
        checkpoints.MAGIC + b"\x07\x00\x00\x00\x02{}",  # an unknown format
        checkpoints.encode({"parameters": np.zeros(2)})[:-1],  # cut short
        checkpoints.encode({"parameters": np.zeros(2)}) + b"\x00",  # trailing bytes
    ],
)
def test_bytes_that_are_not_a_checkpoint_are_refused(data):
    with pytest.raises(ValueError):
        checkpoints.decode(data)


def test_pages_are_newest_first_and_cursors_survive_equal_times(store):
    ids = [make_job(store) for _ in range(5)]
    for job_id in ids:  # the same creation time for all: ties broken by id
        store.redis.zadd(store.keys.tenant_jobs(TENANT), {job_id: 1_000_000})
    seen, cursor = [], None
    while True:
        page, cursor = store.list_jobs(2, cursor, tenant=TENANT)
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
            created.append(
                store.create_job(SPEC, nothing, ("key-1", "print", 60), tenant=TENANT)[0]["id"]
            )
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
        store.create_job(SPEC, nothing, ("key-1", "another print", 60), tenant=TENANT)
    assert 0 < store.redis.ttl(store.keys.idempotency(TENANT, "key-1")) <= 60


def test_graphs_are_kept_for_their_time_to_live(redis_client):
    graphs = GraphStore(redis_client)
    graph_id = graphs.save_result('{"value":1.0}', ttl=30, tenant=TENANT)
    assert graphs.get(graph_id, tenant=TENANT) == ("succeeded", b'{"value":1.0}', None)
    assert 0 < redis_client.ttl(graphs.keys.graph(graph_id)) <= 30

    def enqueue(pipe, queued_id):
        pipe.rpush("test:queue", queued_id)

    queued = graphs.queue(b'{"nodes": []}', 30, enqueue, tenant=TENANT)
    assert redis_client.lrange("test:queue", 0, -1) == [queued.encode()]
    assert graphs.get(queued, tenant=TENANT)[0] == "queued"
    assert 0 < redis_client.ttl(graphs.keys.graph_doc(queued)) <= 30
    assert graphs.take(queued) == b'{"nodes": []}'
    assert graphs.get(queued, tenant=TENANT)[0] == "running"
    assert graphs.take(queued) == b'{"nodes": []}'  # its worker died: taken again
    graphs.finish(queued, error={"title": "bad"})
    assert graphs.get(queued, tenant=TENANT) == ("failed", None, {"title": "bad"})
    assert graphs.document(queued) == b'{"nodes": []}'  # kept to be drawn, as long as the rest
    assert 0 < redis_client.ttl(graphs.keys.graph_doc(queued)) <= 30
    assert graphs.take(queued) is None  # evaluated once: a second delivery does nothing
    assert graphs.get(queued, tenant=TENANT)[0] == "failed"
    assert graphs.get("../etc", tenant=TENANT) is None and graphs.document("../etc") is None


def test_a_graph_evaluated_in_the_request_keeps_its_document(redis_client):
    graphs = GraphStore(redis_client)
    graph_id = graphs.save_result(
        '{"value":1.0}', ttl=30, document=b'{"nodes": [1]}', tenant=TENANT
    )
    assert graphs.document(graph_id) == b'{"nodes": [1]}'
    assert 0 < redis_client.ttl(graphs.keys.graph_doc(graph_id)) <= 30


def test_a_minimal_read_gives_the_summary_without_the_result(redis_client):
    """`minimal` reads the summary stored beside the result; one stored without a summary
    (before there were) has it made from the result, its nodes counted."""
    graphs = GraphStore(redis_client)
    result = fast_dumps(evaluate(MICROGRAD_GRAPH))
    nodes = len(MICROGRAD_GRAPH["nodes"])
    expected = {"output": "g", "value": evaluate(MICROGRAD_GRAPH)["value"], "nodes": nodes}
    with_summary = graphs.save_result(result, 30, tenant=TENANT, nodes=nodes)
    without = graphs.save_result(result, 30, tenant=TENANT)
    assert redis_client.hexists(graphs.keys.graph(with_summary), "summary")
    assert not redis_client.hexists(graphs.keys.graph(without), "summary")
    for graph_id in (with_summary, without):
        status, summary, error = graphs.get(graph_id, tenant=TENANT, minimal=True)
        assert (status, json.loads(summary), error) == ("succeeded", expected, None)
        assert graphs.get(graph_id, tenant=TENANT) == ("succeeded", result, None)
        assert graphs.get(graph_id, tenant="another", minimal=True) is None

    def enqueue(pipe, queued_id):
        pass

    queued = graphs.queue(b"{}", 30, enqueue, tenant=TENANT)
    assert graphs.get(queued, tenant=TENANT, minimal=True) == ("queued", None, None)
    graphs.finish(queued, result_json=result, nodes=nodes)
    assert json.loads(graphs.get(queued, tenant=TENANT, minimal=True)[1]) == expected
    failed = graphs.queue(b"{}", 30, enqueue, tenant=TENANT)
    graphs.finish(failed, error={"title": "bad"})
    assert graphs.get(failed, tenant=TENANT, minimal=True) == ("failed", None, {"title": "bad"})


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.text(ID_CHARACTERS, min_size=1, max_size=4), min_size=1, max_size=12, unique=True)
)
def test_a_summary_counts_the_nodes_of_either_writer_s_result(ids):
    """Made from a result alone (one stored before summaries were), a summary counts its
    nodes as the graph has them, whatever characters its ids hold (':' too), from the
    dict path's result and from the one written from arrays."""
    nodes = [{"id": ids[0], "op": "input", "value": 1.5}]
    nodes += [{"id": i, "op": "tanh", "inputs": [ids[k]]} for k, i in enumerate(ids[1:])]
    doc = {"nodes": nodes}
    expected = {"output": ids[-1], "value": evaluate(doc)["value"], "nodes": len(ids)}
    for result in (fast_dumps(evaluate(doc)), result_json(columns_of(doc))):
        assert json.loads(summary_json(result)) == expected
        assert json.loads(summary_json(result, len(ids))) == expected


def test_a_counted_request_runs_its_writes_in_the_count_and_a_refused_one_none(redis_client):
    """A small graph evaluated in the request is counted and stored in one call: stored
    only if counted, and stored too when no budget applies (rate limits off)."""
    counts, graphs = RateCounts(redis_client), GraphStore(redis_client)
    one = [Budget("b", 1, 60.0)]

    def writes():
        return graphs.result_writes('{"value":1.0}', 30, b'{"nodes": [1]}', tenant=TENANT)

    counted_id, counted_writes = writes()
    assert counts.spend("caller", one, writes=counted_writes)[0] is None
    assert graphs.get(counted_id, tenant=TENANT) == ("succeeded", b'{"value":1.0}', None)
    assert graphs.document(counted_id) == b'{"nodes": [1]}'
    assert 0 < redis_client.ttl(graphs.keys.graph(counted_id)) <= 30
    assert 0 < redis_client.ttl(graphs.keys.graph_doc(counted_id)) <= 30
    refused_id, refused_writes = writes()
    assert counts.spend("caller", one, writes=refused_writes)[0] == 0  # the budget is spent
    assert graphs.get(refused_id, tenant=TENANT) is None
    assert graphs.document(refused_id) is None
    free_id, free_writes = writes()
    assert counts.spend("caller", [], writes=free_writes)[0] is None
    assert graphs.get(free_id, tenant=TENANT)[0] == "succeeded"


def test_every_key_is_under_the_prefix(redis_client):
    store = JobStore(redis_client, prefix="other")
    job_id = make_job(store)
    token = store.start(job_id).token
    assert store.record(job_id, token, report(0, checkpoint={"step": 1}))
    assert store.record(job_id, token, report(1, model={"id": "c" * 32}))
    store.create_job(SPEC, nothing, ("k", "p", 60), tenant=TENANT)
    GraphStore(redis_client, prefix="other").save_result("{}", 60, tenant=TENANT)
    ApiKeys(redis_client, prefix="other").create(TENANT)
    WebhookSecrets(redis_client, prefix="other").get(TENANT)
    keys = [k.decode() for k in redis_client.keys("*")]
    assert len(keys) >= 8 and all(k.startswith("other:") for k in keys)
    assert Keys("other").job(job_id) in keys
