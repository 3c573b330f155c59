"""Bounded storage and small responses, against real redis-servers: retention (keys expire,
the reaper sweeps the indexes), DELETE of jobs and models (and a running job's worker that
writes on), inline data kept apart from the job resource, history pages, and a Redis at its
memory ceiling (503 store-full; nothing stored is lost; a running job rides it out)."""

import hashlib
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.spec import normalize_spec
from engine.train import train
from service.api import create_app
from service.api.routes.jobs import fingerprint
from service.stack import redis_server
from service.store import ApiKeys, GraphStore, JobStore, Report
from service.store.full import StoreFull
from service.store.jobdata import canonical
from service.store.queue import connect, make_queue, training_enqueuer
from service.store.requeue import hand_back
from service.store.retention import adopt_finished, sweep_expired
from service.worker import jobs
from service.worker.reaper import Reaper
from service.worker.recorder import Pace, Recorder, Watch

from .service_helpers import TENANT, check_problem, client_with, small_spec, wait_until

RETAIN = 1.5  # seconds a finished job is kept in the retention tests
DAY = 86_400


def batch(*steps):
    return {"step": list(steps), "loss": [float(s) for s in steps], "accuracy": [None] * len(steps)}


def progress(step):
    return {"step": step, "steps": 100}


METRICS = {"loss": 0.5, "accuracy": None}


def inline_spec(samples, **overrides):
    """A job on `samples` rows of inline data (ints and floats, as a client sends them)."""
    x = [[i % 7, (i * 0.37) % 3 - 1.5] for i in range(samples)]
    y = [1 if row[1] > 0 else -1 for row in x]
    return small_spec(data={"x": x, "y": y}, dataset=None, **overrides)


def without_dataset(spec):
    return {k: v for k, v in spec.items() if v is not None}


def canonical_sha256(data):
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def keys_of(client, job_id):
    """Every key of gradserve's that names the job (rq's own keys aside)."""
    return sorted(k.decode() for k in client.scan_iter(f"gradserve:*{job_id}*"))


STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")


def indexes_holding(store, job_id):
    """The indexes (every job's, the expiry index, TENANT's) that name the job, and the
    hash of the expiring jobs' tenants if it names it."""
    keys = store.keys
    names = [keys.jobs(), keys.expiry(), *(keys.jobs(s) for s in STATUSES)]
    names += [keys.tenant_jobs(TENANT), *(keys.tenant_jobs(TENANT, s) for s in STATUSES)]
    held = [name for name in names if store.redis.zscore(name, job_id) is not None]
    return held + [keys.expiry_tenants()] * store.redis.hexists(keys.expiry_tenants(), job_id)


def listed_in(store, status):
    """The indexes a job in `status` (with no time to live) is in: two of every job's, two
    of its tenant's."""
    keys = store.keys
    return [
        keys.jobs(),
        keys.jobs(status),
        keys.tenant_jobs(TENANT),
        keys.tenant_jobs(TENANT, status),
    ]


def make_job(store, spec=None):
    nothing = lambda pipe, job_id: None  # noqa: E731 - no rq job needed here
    return store.create_job(spec or {"steps": 100}, nothing, tenant=TENANT)[0]["id"]


def finish(store, job_id, with_model=True):
    """Start a job, record two steps with a checkpoint, and end it (succeeded with a model,
    or failed); the model id or None."""
    run = store.start(job_id)
    checkpoint = {"version": 1, "step": 2, "parameters": [0.5]}
    assert store.record(job_id, run.token, Report(batch(0, 1), progress(2), METRICS, checkpoint))
    model = {"id": job_id[::-1], "job_id": job_id, "parameters": [1.0]} if with_model else None
    error = None if with_model else {"title": "failed on purpose"}
    assert store.record(
        job_id, run.token, Report(batch(2), progress(3), METRICS, model=model, error=error)
    )
    return model and model["id"]


# -- retention ----------------------------------------------------------------------------


@pytest.fixture
def short_store(redis_client):
    """A store whose jobs are kept RETAIN seconds once finished."""
    return JobStore(redis_client, retention_days=RETAIN / DAY)


@pytest.fixture
def reaper(short_store, worker_env):
    config = {"REAPER_INTERVAL": 0.2, "LEASE_TTL": 60.0, "MAX_LOST_RUNS": 2}
    queue = make_queue(short_store.redis, {"QUEUE_NAME": "gradserve", "JOB_TIMEOUT": 60})
    return Reaper(short_store, queue, config)


def test_retention_deletes_what_is_due_and_nothing_else(short_store, reaper):
    store = short_store
    make = lambda spec=None: make_job(store, spec)  # noqa: E731
    done = make(normalize_spec(without_dataset(inline_spec(20))))
    model = finish(store, done)
    cancelled = make()
    assert store.cancel(cancelled, tenant=TENANT) == (True, "queued")
    before = {job_id: keys_of(store.redis, job_id) for job_id in (done, cancelled)}
    assert len(before[done]) == 4  # the job, its history, checkpoint and data (+ the model)
    for key in (*before[done], store.keys.model(model), *before[cancelled]):
        assert 0 < store.redis.pttl(key) <= RETAIN * 1000, key
    queued, running = make(), make()
    run = store.start(running)
    assert store.record(running, run.token, Report(batch(0), progress(1), METRICS, {"step": 1}))

    wait_until(lambda: not store.redis.exists(store.keys.job(done)), timeout=RETAIN + 5)
    recent = make()
    recent_model = finish(store, recent)
    assert indexes_holding(store, done)  # the ids stay behind until a sweep
    swept = reaper.run_once().expired

    assert sorted(swept) == sorted([done, cancelled])
    for job_id in (done, cancelled):
        assert keys_of(store.redis, job_id) == [] and indexes_holding(store, job_id) == []
        assert store.get_job(job_id, tenant=TENANT) is None
    assert store.get_model(model, tenant=TENANT) is None
    # what is not due is untouched: a queued and a running job (no time to live at all)...
    for job_id, status in ((queued, "queued"), (running, "running")):
        assert store.get_job(job_id, tenant=TENANT)["status"] == status
        assert store.redis.pttl(store.keys.job(job_id)) == -1
        assert indexes_holding(store, job_id) == listed_in(store, status)
    assert store.redis.pttl(store.keys.history(running)) == -1
    assert store.checkpoint(running) == {"step": 1}
    # ... and a job that finished just now
    assert store.get_job(recent, tenant=TENANT)["status"] == "succeeded"
    assert store.history(recent, tenant=TENANT)["step"] == [0, 1, 2] and store.get_model(
        recent_model, tenant=TENANT
    )
    assert store.keys.expiry() in indexes_holding(store, recent)
    assert sweep_expired(store) == []  # nothing more is due yet

    wait_until(lambda: sweep_expired(store) == [recent], timeout=RETAIN + 5)
    assert (
        keys_of(store.redis, recent) == [] and store.get_model(recent_model, tenant=TENANT) is None
    )


def test_a_sweep_goes_through_every_due_job_and_spares_ones_kept_by_hand(short_store):
    store = short_store
    made = [
        store.create_job({"steps": 1}, lambda pipe, job_id: None, tenant=TENANT)[0]["id"]
        for _ in range(7)
    ]
    for job_id in made:
        assert store.cancel(job_id, tenant=TENANT)[0]
    kept, lengthened = made[:2]
    store.redis.persist(store.keys.job(kept))  # an operator keeps this one for good
    store.redis.expire(store.keys.job(lengthened), 600)  # and this one ten minutes more
    store.redis.zadd(store.keys.expiry(), {kept: 1, lengthened: 2})  # first in the sweep
    wait_until(lambda: store.get_job(made[-1], tenant=TENANT) is None, timeout=RETAIN + 5)
    assert sorted(sweep_expired(store, batch=2)) == sorted(made[2:])  # in rounds of 2
    assert indexes_holding(store, kept) == listed_in(store, "cancelled")
    assert store.keys.expiry() in indexes_holding(store, lengthened)
    assert store.redis.zscore(store.keys.expiry(), lengthened) > time.time() * 1000 + 500_000
    assert (
        sweep_expired(store) == [] and store.get_job(kept, tenant=TENANT)["status"] == "cancelled"
    )


def as_stored_before_retention(store, job_id, finished_days_ago):
    """Make a finished job look as it was stored before there was retention."""
    for key in store.redis.scan_iter(f"gradserve:*{job_id}*"):
        store.redis.persist(key)
    store.redis.zrem(store.keys.expiry(), job_id)
    store.redis.hdel(store.keys.job(job_id), "retention_ms")
    finished = datetime.now(UTC) - timedelta(days=finished_days_ago)
    stamp = json.dumps(finished.isoformat(timespec="milliseconds").replace("+00:00", "Z"))
    store.redis.hset(store.keys.job(job_id), "finished_at", stamp)


def test_jobs_finished_before_retention_are_given_theirs_once(redis_client, reaper):
    store = JobStore(redis_client)  # 30 days
    old, recent, queued = (make_job(store) for _ in range(3))
    old_model, recent_model = finish(store, old), finish(store, recent)
    store.redis.persist(store.keys.model(old_model))
    store.redis.persist(store.keys.model(recent_model))
    as_stored_before_retention(store, old, finished_days_ago=31)
    as_stored_before_retention(store, recent, finished_days_ago=1)
    assert store.redis.pttl(store.keys.job(old)) == -1

    assert sorted(adopt_finished(store)) == sorted([old, recent])
    assert (
        keys_of(store.redis, old) == [] and store.get_model(old_model, tenant=TENANT) is None
    )  # past due
    assert sweep_expired(store) == [old] and indexes_holding(store, old) == []
    day = 86_400_000
    for key in (*keys_of(store.redis, recent), store.keys.model(recent_model)):
        assert 28 * day < store.redis.pttl(key) <= 29 * day, key  # 30 days from its finish
    assert store.redis.pttl(store.keys.job(queued)) == -1  # not finished: no retention
    store.redis.persist(store.keys.job(recent))
    assert adopt_finished(store) == []  # once
    assert reaper.run_once().expired == [] and store.redis.pttl(store.keys.job(recent)) == -1


def test_a_job_stored_with_its_inline_data_in_its_spec_reads_as_a_summary(client, store):
    spec = without_dataset(inline_spec(30))
    job_id = client.post("/v1/jobs", json=spec).get_json()["id"]
    normalized = normalize_spec(spec)
    store.redis.hset(store.keys.job(job_id), "spec", json.dumps(normalized))  # the old way
    store.redis.delete(store.keys.data(job_id))
    summary = client.get(f"/v1/jobs/{job_id}").get_json()["spec"]["data"]
    assert summary == {"samples": 30, "features": 2, "sha256": canonical_sha256(normalized["data"])}
    data = client.get(f"/v1/jobs/{job_id}/data")
    assert hashlib.sha256(data.data).hexdigest() == summary["sha256"]
    assert data.get_json() == spec["data"]  # the same numbers (stored as floats then)
    assert store.start(job_id).spec["data"] == normalized["data"]  # and trained on


def test_a_jobs_retention_is_the_apis_setting_when_it_was_submitted(make_app, worker_env, store):
    """The API's RETENTION_DAYS goes with the job: the worker finishing it (whose own
    setting is the default, 30 days) starts that retention."""
    client = make_app(RETENTION_DAYS=RETAIN / DAY).test_client()
    job = client.post("/v1/jobs", json=without_dataset(inline_spec(12))).get_json()
    jobs.run_training(job["id"])
    done = client.get(f"/v1/jobs/{job['id']}").get_json()
    assert done["status"] == "succeeded"
    paths = [
        f"/v1/jobs/{job['id']}",
        f"/v1/jobs/{job['id']}/history",
        f"/v1/jobs/{job['id']}/data",
        f"/v1/models/{done['model_id']}",
    ]
    assert all(client.get(path).status_code == 200 for path in paths)
    wait_until(lambda: client.get(paths[0]).status_code == 404, timeout=RETAIN + 5)
    assert [client.get(path).status_code for path in paths] == [404] * 4
    assert sweep_expired(store) == [job["id"]]
    assert client.get("/v1/jobs").get_json()["items"] == []


def test_graphs_are_kept_no_longer_than_the_retention(make_app, store):
    client = make_app(RETENTION_DAYS=30 / DAY).test_client()  # 30 s, under GRAPH_TTL
    graph_id = client.post("/v1/graphs", json={"nodes": [{"id": "a", "op": "input", "value": 1}]})
    ttl = store.redis.ttl(store.keys.graph(graph_id.get_json()["id"]))
    assert 0 < ttl <= 30


def test_a_late_worker_never_brings_back_an_expired_graph(redis_client):
    graphs = GraphStore(redis_client)
    queued = graphs.queue(b'{"nodes": []}', 1, lambda pipe, graph_id: None, tenant=TENANT)
    assert graphs.take(queued) == b'{"nodes": []}'
    wait_until(lambda: graphs.get(queued, tenant=TENANT) is None, timeout=5)
    graphs.finish(queued, result_json='{"value": 1.0}')  # the evaluation ends after expiry
    assert graphs.get(queued, tenant=TENANT) is None and keys_of(redis_client, queued) == []


# -- DELETE -------------------------------------------------------------------------------


@pytest.fixture
def trained(client, worker_env):
    job = client.post("/v1/jobs", json=small_spec(engine="reference")).get_json()
    jobs.run_training(job["id"])
    return client.get(f"/v1/jobs/{job['id']}").get_json()


def gone(client, job_id):
    """Every endpoint of the job answers 404."""
    answers = [
        client.get(f"/v1/jobs/{job_id}"),
        client.get(f"/v1/jobs/{job_id}/history"),
        client.get(f"/v1/jobs/{job_id}/data"),
        client.post(f"/v1/jobs/{job_id}/cancel"),
        client.delete(f"/v1/jobs/{job_id}"),
    ]
    for response in answers:
        check_problem(response.status_code, response.content_type, response.get_json(), 404, None)
    return True


def test_delete_of_a_queued_job(client, store, worker_env):
    job_id = client.post("/v1/jobs", json=without_dataset(inline_spec(10))).get_json()["id"]
    response = client.delete(f"/v1/jobs/{job_id}")
    assert response.status_code == 204 and response.data == b""
    assert gone(client, job_id)
    assert keys_of(store.redis, job_id) == [] and indexes_holding(store, job_id) == []
    jobs.run_training(job_id)  # its rq job, taken later, finds nothing to run
    assert keys_of(store.redis, job_id) == []
    assert client.get("/v1/jobs").get_json()["items"] == []


def test_delete_of_a_finished_job_keeps_its_model_until_it_is_deleted(client, trained):
    model_id = trained["model_id"]
    assert client.delete(f"/v1/jobs/{trained['id']}").status_code == 204
    assert gone(client, trained["id"])
    assert client.get(f"/v1/models/{model_id}").get_json()["job_id"] == trained["id"]
    assert client.delete(f"/v1/models/{model_id}").status_code == 204
    for response in (
        client.get(f"/v1/models/{model_id}"),
        client.post(f"/v1/models/{model_id}/predict", json={"x": [[0.0, 0.0]]}),
        client.delete(f"/v1/models/{model_id}"),
    ):
        check_problem(response.status_code, response.content_type, response.get_json(), 404, None)


def test_delete_of_a_running_job_stops_its_worker_and_refuses_its_writes(client, store):
    job_id = client.post("/v1/jobs", json=small_spec(steps=100)).get_json()["id"]
    run = store.start(job_id, owner="w")
    assert store.record(job_id, run.token, Report(batch(0, 1), progress(2), METRICS, {"step": 2}))
    with store.cancel_listener(job_id) as listener:
        assert client.delete(f"/v1/jobs/{job_id}").status_code == 204
        wait_until(listener.cancelled, timeout=2)  # told at once, as a cancel is
    # Every write the run may still make is refused and brings nothing back.
    model = {"id": "b" * 32, "job_id": job_id}
    assert not store.record(job_id, run.token, Report(batch(2), progress(3), METRICS))
    assert not store.record(job_id, run.token, Report(batch(2), progress(3), METRICS, model=model))
    assert not store.record(job_id, run.token, Report(batch(), progress(3), METRICS, error={}))
    assert not store.renew_lease(job_id, run, "w", 10.0)
    enqueue = training_enqueuer(make_queue(store.redis, client.application.config))
    report = Report(batch(2), progress(3), METRICS, {"step": 3})
    assert not hand_back(store, job_id, run.token, report, enqueue)
    assert store.start(job_id) is None
    assert store.cancel(job_id, tenant=TENANT) == (False, "")
    assert (
        keys_of(store.redis, job_id) == [] and store.get_model(model["id"], tenant=TENANT) is None
    )
    assert indexes_holding(store, job_id) == []
    assert gone(client, job_id)


def test_an_idempotency_key_of_a_deleted_job_makes_a_new_one(client):
    headers = {"Idempotency-Key": "delete-me"}
    first = client.post("/v1/jobs", json=small_spec(), headers=headers).get_json()["id"]
    assert client.delete(f"/v1/jobs/{first}").status_code == 204
    again = client.post("/v1/jobs", json=small_spec(), headers=headers)
    assert again.status_code == 202 and "Idempotent-Replayed" not in again.headers
    second = again.get_json()["id"]
    assert second != first
    replayed = client.post("/v1/jobs", json=small_spec(), headers=headers)
    assert replayed.get_json()["id"] == second and replayed.headers["Idempotent-Replayed"]


# -- inline data: summarised in the job resource, served on its own -----------------------


def test_a_job_of_20000_inline_samples_stays_small_and_its_data_comes_back_exactly(client, store):
    spec = without_dataset(inline_spec(20_000))
    posted = client.post("/v1/jobs", json=spec)
    assert posted.status_code == 202 and len(posted.data) < 5_000
    job_id = posted.get_json()["id"]
    response = client.get(f"/v1/jobs/{job_id}")
    assert len(response.data) < 5_000, len(response.data)
    summary = response.get_json()["spec"]["data"]
    assert summary == {"samples": 20_000, "features": 2, "sha256": canonical_sha256(spec["data"])}
    listed = client.get("/v1/jobs?limit=100")
    assert len(listed.data) < 5_000
    data = client.get(f"/v1/jobs/{job_id}/data")
    assert data.status_code == 200 and data.content_type == "application/json"
    assert hashlib.sha256(data.data).hexdigest() == summary["sha256"]
    returned = data.get_json()
    assert returned == spec["data"]  # as submitted: ints stay ints, floats the same floats
    assert [type(v) for v in returned["x"][1]] == [type(v) for v in spec["data"]["x"][1]]
    assert data.data.startswith(b'{"x":[[0,-1.5],[1,')  # canonical: keys sorted, no spaces
    # The record itself holds the summary only: polls never read the data.
    assert len(store.redis.hget(store.keys.job(job_id), "spec")) < 1_000


def test_a_worker_trains_on_the_inline_data_itself(client, worker_env):
    spec = without_dataset(inline_spec(40, steps=8, engine="reference"))
    job_id = client.post("/v1/jobs", json=spec).get_json()["id"]
    jobs.run_training(job_id)
    job = client.get(f"/v1/jobs/{job_id}").get_json()
    assert job["status"] == "succeeded" and job["spec"]["data"]["samples"] == 40
    expected = train(normalize_spec(spec))  # the same spec, trained here
    history = client.get(f"/v1/jobs/{job_id}/history").get_json()
    assert history["loss"] == expected.loss and history["accuracy"] == expected.accuracy
    model = client.get(f"/v1/models/{job['model_id']}").get_json()
    assert model["parameters"] == expected.parameters


def test_a_generated_dataset_stays_in_the_spec_and_has_no_data_to_fetch(client):
    job = client.post("/v1/jobs", json=small_spec()).get_json()
    assert job["spec"]["dataset"]["name"] == "moons" and "data" not in job["spec"]
    response = client.get(f"/v1/jobs/{job['id']}/data")
    check_problem(response.status_code, response.content_type, response.get_json(), 404, None)
    assert "generated" in response.get_json()["detail"]


# -- history pages ------------------------------------------------------------------------


def test_history_pages_chain_by_next_since_and_the_link_header(client, worker_env):
    job_id = client.post("/v1/jobs", json=small_spec(steps=25)).get_json()["id"]
    jobs.run_training(job_id)
    whole = client.get(f"/v1/jobs/{job_id}/history").get_json()  # the default page holds 25
    assert whole["step"] == list(range(25)) and whole["next_since"] is None
    seen, path = [], f"/v1/jobs/{job_id}/history?limit=10"
    while path:
        response = client.get(path)
        page = response.get_json()
        seen += page["step"]
        assert page["loss"] == whole["loss"][page["step"][0] : page["step"][-1] + 1]
        link = response.headers.get("Link")
        if page["next_since"] is None:
            assert link is None
            path = None
        else:
            assert page["next_since"] == page["step"][-1] + 1
            path = link.removeprefix("<").split(">")[0]
            assert link.endswith('rel="next"') and f"since={page['next_since']}" in path
    assert seen == whole["step"]
    tail = client.get(f"/v1/jobs/{job_id}/history?since=20&limit=3").get_json()
    assert tail["step"] == [20, 21, 22] and tail["next_since"] == 23


def test_history_without_limit_is_one_default_page(make_app, worker_env):
    client = make_app(HISTORY_PAGE_SIZE=4).test_client()
    job_id = client.post("/v1/jobs", json=small_spec(steps=10)).get_json()["id"]
    jobs.run_training(job_id)
    page = client.get(f"/v1/jobs/{job_id}/history?since=3").get_json()
    assert page["step"] == [3, 4, 5, 6] and page["next_since"] == 7


# -- a Redis at its memory ceiling ---------------------------------------------------------


@pytest.fixture(scope="module")
def small_redis(tmp_path_factory):
    """A redis-server of its own (its maxmemory is set by the tests), stopped at the end."""
    port = redis_server.free_port()
    process = redis_server.start(port, tmp_path_factory.mktemp("small-redis"), durable=False)
    redis_server.wait_ready(redis_server.url(port), process)
    yield redis_server.url(port)
    process.terminate()
    process.wait(10)


@pytest.fixture
def full(small_redis):
    """Fill the small Redis to its ceiling; `full.make_room()` deletes the filler."""
    client = connect(small_redis)
    client.flushdb()
    client.config_set("maxmemory", 0)

    class Full:
        url = small_redis
        redis = client

        @staticmethod
        def fill():
            used = int(client.info("memory")["used_memory"])
            client.config_set("maxmemory", used + 4_000_000)
            filler = 0
            with pytest.raises(redis.exceptions.OutOfMemoryError):
                while True:
                    client.set(f"filler:{filler}", b"x" * 100_000)
                    filler += 1
            assert filler >= 30
            # Then a ceiling 1 MB under what it holds: full, however client buffers come
            # and go (noeviction: nothing goes).
            used = int(client.info("memory")["used_memory"])
            client.config_set("maxmemory", used - 1_000_000)
            with pytest.raises(redis.exceptions.OutOfMemoryError):
                client.set("one-more", "x")
            assert client.dbsize() >= filler

        @staticmethod
        def make_room():
            client.delete(*client.keys("filler:*"))

    yield Full
    client.config_set("maxmemory", 0)
    client.flushdb()
    client.close()


def test_a_full_redis_refuses_writes_with_503_and_loses_nothing(full):
    key = ApiKeys(full.redis).create(TENANT)[1]
    client = client_with(create_app({"TESTING": True, "REDIS_URL": full.url}), key)
    kept = client.post("/v1/jobs", json=small_spec()).get_json()
    doomed = client.post("/v1/jobs", json=small_spec()).get_json()["id"]
    full.fill()

    response = client.post("/v1/jobs", json=small_spec())
    check_problem(response.status_code, response.content_type, response.get_json(), 503, None)
    assert response.get_json()["type"].endswith("/store-full")
    assert response.headers["Retry-After"] == "60"
    cancel = client.post(f"/v1/jobs/{kept['id']}/cancel")
    assert cancel.status_code == 503 and cancel.get_json()["type"].endswith("/store-full")
    # Reads go on, and what was stored is all there.
    assert client.get(f"/v1/jobs/{kept['id']}").get_json() == kept
    assert [j["id"] for j in client.get("/v1/jobs").get_json()["items"]] == [doomed, kept["id"]]
    assert client.get(f"/v1/jobs/{kept['id']}/history").status_code == 200
    # A delete only removes: it works, and makes room.
    assert client.delete(f"/v1/jobs/{doomed}").status_code == 204
    full.make_room()
    assert client.post("/v1/jobs", json=small_spec()).status_code == 202
    assert client.get(f"/v1/jobs/{kept['id']}").get_json() == kept


def test_a_running_job_rides_out_a_full_redis(full):
    store = JobStore(full.redis)
    job_id = store.create_job({"steps": 100}, lambda pipe, job_id: None, tenant=TENANT)[0]["id"]
    run = store.start(job_id)
    with store.cancel_listener(job_id) as cancel:
        recorder = Recorder(store, job_id, run, Pace(0.0, 100.0), Watch(cancel))
        recorder.batch = batch(0, 1)
        recorder.flush()
        full.fill()
        with pytest.raises(StoreFull):  # what the recorder meets, and waits out
            store.record(job_id, run.token, Report(batch(2), progress(3), METRICS))
        recorder.batch = batch(2, 3)
        recorder.flush()  # refused: the steps are kept for the next flush
        assert recorder.unreachable and recorder.batch == batch(2, 3)
        assert store.history(job_id, tenant=TENANT)["step"] == [0, 1]
        assert store.get_job(job_id, tenant=TENANT)["status"] == "running"
        full.make_room()
        recorder.batch = batch(2, 3, 4)
        recorder.flush()
        assert not recorder.unreachable
    assert store.history(job_id, tenant=TENANT)["step"] == [0, 1, 2, 3, 4]
    assert store.get_job(job_id, tenant=TENANT)["status"] == "running"


def test_the_bundled_redis_takes_its_ceiling_from_the_settings(tmp_path, monkeypatch):
    assert "maxmemory 1gb\n" in redis_server.Bundled(tmp_path)._config()
    monkeypatch.setenv("GRADSERVE_REDIS_MAXMEMORY", "256mb")
    assert "maxmemory 256mb\n" in redis_server.Bundled(tmp_path)._config()
    assert "maxmemory-policy noeviction\n" in redis_server.Bundled(tmp_path)._config()


def test_reaper_passes_survive_a_full_redis(full, worker_env):
    store = JobStore(full.redis, retention_days=0.5 / DAY)
    job_id = store.create_job({"steps": 100}, lambda pipe, job_id: None, tenant=TENANT)[0]["id"]
    store.cancel(job_id, tenant=TENANT)
    queue = make_queue(full.redis, {"QUEUE_NAME": "gradserve", "JOB_TIMEOUT": 60})
    reaper = Reaper(store, queue, {"REAPER_INTERVAL": 0.2, "LEASE_TTL": 60.0, "MAX_LOST_RUNS": 2})
    full.fill()
    # The sweep only removes: it runs on a full Redis.
    wait_until(lambda: reaper.run_once().expired == [job_id], timeout=5)
    assert (
        store.get_job(job_id, tenant=TENANT) is None and store.redis.zcard(store.keys.jobs()) == 0
    )
    assert store.redis.zcard(store.keys.tenant_jobs(TENANT)) == 0


NUMBER = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(-1e-3, 1e-3),  # the range where the spellings differ most
    st.integers(-(10**30), 10**30),  # beyond 64 bits: the standard library's way
    st.sampled_from([1e-5, 1e-4, 9.999e-5, 1e-7, 1e16, 1e15, 1.5e300, 5e-324, -0.0, 10.00001]),
)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.lists(NUMBER, min_size=1, max_size=4), min_size=1, max_size=8),
    st.lists(st.one_of(NUMBER, st.lists(NUMBER, max_size=3)), max_size=8),
)
def test_canonical_data_is_the_standard_librarys_text_byte_for_byte(x, y):
    data = {"y": y, "x": x}  # keys sorted in the text
    assert canonical(data) == json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.lists(NUMBER, min_size=1, max_size=3), min_size=1, max_size=5),
    st.lists(NUMBER, max_size=5),
    st.dictionaries(
        st.text(max_size=4),  # keys before and after "data", non-ASCII ones too
        st.one_of(st.text(max_size=4), NUMBER, st.none(), st.lists(NUMBER, max_size=2)),
        max_size=4,
    ),
)
def test_a_fingerprint_with_the_data_written_once_is_the_whole_bodys(x, y, rest):
    body = {**rest, "data": {"x": x, "y": y}}
    assert fingerprint(body, canonical(body["data"])) == fingerprint(body)
