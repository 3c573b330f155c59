"""Two tenants on one API (Flask's test client, the real Redis, the worker's job functions
run here): each sees and touches only its own jobs, models, graphs, histories and lists;
another tenant's id is answered exactly as an unknown one."""

import pytest

from service.store import ApiKeys, JobStore
from service.worker import jobs

from .service_helpers import ID, MICROGRAD_GRAPH, TENANT, client_with, small_spec

OTHER = "other-tenant"


@pytest.fixture
def theirs(app, redis_client):
    """A client of another tenant, on the same API."""
    return client_with(app, ApiKeys(redis_client).create(OTHER)[1])


@pytest.fixture
def mine(client, worker_env):
    """One of each of TENANT's resources: a trained job and its model, a queued job, a job
    on inline data, a graph evaluated in the request and one evaluated by a worker."""
    trained = client.post("/v1/jobs", json=small_spec(engine="reference")).get_json()["id"]
    jobs.run_training(trained)
    model = client.get(f"/v1/jobs/{trained}").get_json()["model_id"]
    queued = client.post("/v1/jobs", json=small_spec()).get_json()["id"]
    inline = small_spec(data={"x": [[0.0, 1.0], [1.0, 0.0]], "y": [1, -1]}, dataset=None)
    inline = {k: v for k, v in inline.items() if v is not None}
    with_data = client.post("/v1/jobs", json=inline).get_json()["id"]
    graph = client.post("/v1/graphs", json=MICROGRAD_GRAPH).get_json()["id"]
    async_graph = client.post(
        "/v1/graphs", json=MICROGRAD_GRAPH, headers={"Prefer": "respond-async"}
    ).get_json()["id"]
    jobs.evaluate_graph(async_graph)  # the worker's result stays its creator's
    return {
        "job": trained,
        "model": model,
        "queued": queued,
        "with_data": with_data,
        "graph": graph,
        "async_graph": async_graph,
    }


# Every endpoint that takes an id: (method, path, body).
BY_ID = [
    ("GET", "/v1/jobs/{job}", None),
    ("GET", "/v1/jobs/{job}/history", None),
    ("GET", "/v1/jobs/{job}/history?since=2", None),
    ("GET", "/v1/jobs/{job}/history?since=1&limit=2", None),
    ("GET", "/v1/jobs/{with_data}/data", None),
    ("POST", "/v1/jobs/{queued}/cancel", None),
    ("POST", "/v1/jobs/{job}/cancel", None),
    ("DELETE", "/v1/jobs/{job}", None),
    ("DELETE", "/v1/jobs/{queued}", None),
    ("GET", "/v1/models/{model}", None),
    ("POST", "/v1/models/{model}/predict", {"x": [[0.5, 0.5]]}),
    ("DELETE", "/v1/models/{model}", None),
    ("GET", "/v1/graphs/{graph}", None),
    ("GET", "/v1/graphs/{async_graph}", None),
]


def call(client, method, path, body):
    return client.open(path, method=method, json=body)


@pytest.mark.parametrize("method, path, body", BY_ID, ids=[f"{m} {p}" for m, p, _ in BY_ID])
def test_another_tenants_id_is_404_exactly_as_an_unknown_one(
    mine, client, theirs, method, path, body
):
    own_id = path.format(**mine).split("/")[3].split("?")[0]
    response = call(theirs, method, path.format(**mine), body)
    unknown = call(theirs, method, path.format(**dict.fromkeys(mine, ID)), body)
    assert response.status_code == unknown.status_code == 404
    assert response.headers["Content-Type"] == unknown.headers["Content-Type"]
    assert response.get_json() == {
        key: value.replace(ID, own_id) if isinstance(value, str) else value
        for key, value in unknown.get_json().items()
    }
    # and the owner's call still finds it (a DELETE of theirs removed nothing)
    assert call(client, method, path.format(**mine), body).status_code in (200, 204, 409)


def test_another_tenants_cancel_changes_nothing(mine, client, theirs):
    assert theirs.post(f"/v1/jobs/{mine['queued']}/cancel").status_code == 404
    assert client.get(f"/v1/jobs/{mine['queued']}").get_json()["status"] == "queued"


def test_another_tenants_delete_changes_nothing(mine, client, theirs, store):
    for path in (f"/v1/jobs/{mine['job']}", f"/v1/models/{mine['model']}"):
        assert theirs.delete(path).status_code == 404
        assert client.get(path).status_code == 200
    assert mine["job"] in [job["id"] for job in client.get("/v1/jobs").get_json()["items"]]
    assert store.history(mine["job"], tenant=TENANT)["step"]


def test_a_deleted_job_leaves_its_tenants_indexes(mine, client, store):
    for job_id in (mine["job"], mine["queued"]):
        assert client.delete(f"/v1/jobs/{job_id}").status_code == 204
    assert [job["id"] for job in client.get("/v1/jobs").get_json()["items"]] == [mine["with_data"]]
    for status, expected in (("queued", [mine["with_data"]]), ("succeeded", [])):
        page = client.get(f"/v1/jobs?status={status}").get_json()["items"]
        assert [job["id"] for job in page] == expected, status
    indexes = [store.keys.tenant_jobs(TENANT, s) for s in (None, "queued", "succeeded")]
    for job_id in (mine["job"], mine["queued"]):
        assert all(store.redis.zscore(index, job_id) is None for index in indexes)


def test_each_tenant_lists_only_its_own_jobs(mine, client, theirs):
    their_job = theirs.post("/v1/jobs", json=small_spec()).get_json()["id"]
    listed = [job["id"] for job in client.get("/v1/jobs").get_json()["items"]]
    assert listed == [mine["with_data"], mine["queued"], mine["job"]]
    assert [job["id"] for job in theirs.get("/v1/jobs").get_json()["items"]] == [their_job]
    for status, expected in (("queued", [their_job]), ("succeeded", []), ("cancelled", [])):
        page = theirs.get(f"/v1/jobs?status={status}").get_json()
        assert [job["id"] for job in page["items"]] == expected, status
    succeeded = client.get("/v1/jobs?status=succeeded").get_json()["items"]
    assert [job["id"] for job in succeeded] == [mine["job"]]


def test_a_tenants_status_index_follows_its_jobs(client, theirs, worker_env):
    """The per-tenant indexes move with each status change, as the global ones do."""
    job_id = theirs.post("/v1/jobs", json=small_spec()).get_json()["id"]
    theirs.post(f"/v1/jobs/{job_id}/cancel")
    assert [j["id"] for j in theirs.get("/v1/jobs?status=cancelled").get_json()["items"]] == [
        job_id
    ]
    assert theirs.get("/v1/jobs?status=queued").get_json()["items"] == []
    assert client.get("/v1/jobs?status=cancelled").get_json()["items"] == []


def test_idempotency_keys_are_per_tenant(client, theirs):
    headers = {"Idempotency-Key": "order-1"}
    mine = client.post("/v1/jobs", json=small_spec(), headers=headers)
    same_body = theirs.post("/v1/jobs", json=small_spec(), headers=headers)
    other_body = theirs.post("/v1/jobs", json=small_spec(steps=3), headers={"Idempotency-Key": "k"})
    client_other = client.post(
        "/v1/jobs", json=small_spec(steps=4), headers={"Idempotency-Key": "k"}
    )
    assert mine.status_code == same_body.status_code == 202
    assert mine.get_json()["id"] != same_body.get_json()["id"]
    assert "Idempotent-Replayed" not in same_body.headers
    assert other_body.status_code == client_other.status_code == 202  # not a reuse: 2 tenants
    again = theirs.post("/v1/jobs", json=small_spec(), headers=headers)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["id"] == same_body.get_json()["id"]


def test_models_and_queued_graphs_inherit_their_creators_tenant(mine, store, redis_client):
    owner = redis_client.hget(store.keys.model(mine["model"]), "tenant")
    assert owner.decode() == TENANT
    assert redis_client.hget(store.keys.graph(mine["async_graph"]), "tenant").decode() == TENANT
    assert store.get_model(mine["model"], tenant=TENANT)["id"] == mine["model"]
    assert store.get_model(mine["model"], tenant=OTHER) is None


def test_a_record_without_a_tenant_is_nobodys(client, redis_client):
    """Written behind the API's back (no tenant field): no tenant may read it."""
    store = JobStore(redis_client)
    job_id = client.post("/v1/jobs", json=small_spec()).get_json()["id"]
    redis_client.hdel(store.keys.job(job_id), "tenant")
    assert client.get(f"/v1/jobs/{job_id}").status_code == 404
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 404
    redis_client.set(store.keys.model(ID), '{"id": "..."}')  # a model as stored before
    assert client.get(f"/v1/models/{ID}").status_code == 404
