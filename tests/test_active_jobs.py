"""The cap on a tenant's active jobs (MAX_ACTIVE_JOBS: queued plus running), in-process on the
real Redis with no worker (a job stays queued until the test moves it): one more is a 429
naming the count and the cap, a replay is still given back, a cancel frees a place, and
submissions at the same moment never overshoot it."""

import threading

import pytest

from service.errors import TooManyActiveJobs
from service.store import ApiKeys, JobStore, Keys
from service.store.queue import connect

from .service_helpers import TENANT, check_problem, client_with, small_spec

CAP = 2


@pytest.fixture
def app(make_app):
    return make_app(MAX_ACTIVE_JOBS=CAP, ACTIVE_JOBS_RETRY_AFTER=7)


def submit(client, **kwargs):
    return client.post("/v1/jobs", json=small_spec(), **kwargs)


def queued(client):
    return client.get("/v1/jobs?status=queued").get_json()["items"]


def refused_at_the_cap(response, active=CAP):
    body = response.get_json()
    check_problem(response.status_code, response.content_type, body, 429, None)
    assert body["type"].endswith("/too-many-active-jobs")
    assert (body["active_jobs"], body["max_active_jobs"]) == (active, CAP)
    assert f"{active} jobs queued or running" in body["detail"] and str(CAP) in body["detail"]
    assert response.headers["Retry-After"] == "7"  # ACTIVE_JOBS_RETRY_AFTER


def test_one_job_over_the_cap_is_429_and_a_cancel_makes_room(client, app):
    first, second = (submit(client).get_json()["id"] for _ in range(CAP))
    refused_at_the_cap(submit(client))
    assert {job["id"] for job in queued(client)} == {first, second}  # nothing was stored
    assert app.extensions["gradserve"].queue.count == CAP  # nor queued for a worker
    assert client.post(f"/v1/jobs/{first}/cancel").status_code == 200
    third = submit(client)
    assert third.status_code == 202
    assert {job["id"] for job in queued(client)} == {second, third.get_json()["id"]}


def test_running_jobs_count_and_finished_ones_do_not(client, store):
    first, second = (submit(client).get_json()["id"] for _ in range(CAP))
    assert store.start(first) is not None  # running now: still active
    refused_at_the_cap(submit(client))
    assert client.post(f"/v1/jobs/{first}/cancel").status_code == 200  # a running one too
    assert submit(client).status_code == 202
    refused_at_the_cap(submit(client))
    assert second


def test_an_idempotent_replay_at_the_cap_is_given_back(client):
    made = submit(client, headers={"Idempotency-Key": "once"})
    submit(client)
    again = submit(client, headers={"Idempotency-Key": "once"})
    assert again.status_code == 202 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["id"] == made.get_json()["id"]
    refused_at_the_cap(submit(client, headers={"Idempotency-Key": "new"}))


def test_each_tenant_has_a_cap_of_its_own(client, app, redis_client):
    for _ in range(CAP):
        submit(client)
    refused_at_the_cap(submit(client))
    other = client_with(app, ApiKeys(redis_client).create("other")[1])
    assert [submit(other).status_code for _ in range(CAP)] == [202] * CAP
    refused_at_the_cap(submit(other))


def test_graphs_do_not_count_and_are_not_capped(client):
    for _ in range(CAP):
        submit(client)
    graph = {"nodes": [{"id": "a", "op": "input", "value": 1.0}]}
    queued_graph = client.post("/v1/graphs", json=graph, headers={"Prefer": "respond-async"})
    assert queued_graph.status_code == 202


def nothing(pipe, job_id):
    """An enqueue that enqueues nothing (the store's part alone)."""


def race(redis_url, submitters, cap):
    """`submitters` submissions let go at once, each on a connection of its own: the ids
    made, the refusals' members, any other error; and the stores used."""
    stores = [JobStore(connect(redis_url)) for _ in range(submitters)]
    start = threading.Barrier(submitters)
    made, refused, errors = [], [], []

    def submit_one(store):
        start.wait()
        try:
            made.append(store.create_job({"steps": 1}, nothing, tenant=TENANT, max_active=cap))
        except TooManyActiveJobs as refusal:
            refused.append(refusal.extensions)
        except Exception as error:  # pragma: no cover - reported by the caller
            errors.append(error)

    threads = [threading.Thread(target=submit_one, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for store in stores:
        store.redis.close()
    return made, refused, errors


@pytest.mark.parametrize("cap", [1, 3])
def test_concurrent_submissions_never_overshoot_the_cap(redis_url, redis_client, cap):
    """Ten submissions at once, five times over: exactly `cap` jobs are made each time (the
    count is read under WATCH in the creating transaction), and every other submission is
    told the count and the cap."""
    keys = Keys()
    for round_ in range(5):
        redis_client.flushdb()
        made, refused, errors = race(redis_url, 10, cap)
        assert not errors, errors
        assert len(made) == cap, round_
        assert refused == [{"active_jobs": cap, "max_active_jobs": cap}] * (10 - cap)
        assert redis_client.zcard(keys.tenant_jobs(TENANT, "queued")) == cap
        assert redis_client.zcard(keys.jobs()) == cap
