"""The HTTP API in-process (Flask's test client) against the real Redis: status codes,
headers, problem details, limits, pagination, idempotency and the OpenAPI document."""

import gzip
import io
import json
import math
import sys
import time
import zlib

import pytest
from rq.job import Job
from rq.serializers import JSONSerializer

import engine.compiled.evaluate as compiled_evaluate
from service import settings
from service.api import create_app
from service.stack import redis_server
from service.store.queue import make_queue
from service.worker import jobs

from .service_helpers import (
    BAD_INPUTS,
    ID,
    MICROGRAD_FIGURES,
    MICROGRAD_GRAPH,
    check_problem,
    forward,
    small_spec,
)
from .test_draw import drawing


def chain(n):
    """A graph of n nodes: x, then n - 1 tanh nodes in a row."""
    nodes = [{"id": "n0", "op": "input", "value": 0.5}]
    nodes += [{"id": f"n{i}", "op": "tanh", "inputs": [f"n{i - 1}"]} for i in range(1, n)]
    return {"nodes": nodes}


def send(client, method, path, kwargs):
    kwargs = dict(kwargs)
    if kwargs.pop("json_type", False):
        kwargs["content_type"] = "application/json"
    return client.open(path, method=method, **kwargs)


@pytest.fixture
def trained(client, worker_env):
    """A job run to success by the worker's job function, here in-process."""
    job = client.post("/v1/jobs", json=small_spec(engine="reference")).get_json()
    jobs.run_training(job["id"])
    return client.get(f"/v1/jobs/{job['id']}").get_json()


# -- graphs -------------------------------------------------------------------------------


def test_graph_small_is_evaluated_in_the_request(client):
    response = client.post("/v1/graphs", json=MICROGRAD_GRAPH)
    assert response.status_code == 201
    body = response.get_json()
    assert response.headers["Location"] == f"/v1/graphs/{body['id']}"
    assert body["status"] == "succeeded"
    result = body["result"]
    assert result["output"] == "g"
    assert result["value"] == pytest.approx(MICROGRAD_FIGURES["value"], abs=1e-4)
    assert result["grads"]["a"] == pytest.approx(MICROGRAD_FIGURES["a"], abs=1e-4)
    assert result["grads"]["b"] == pytest.approx(MICROGRAD_FIGURES["b"], abs=1e-4)
    assert list(result["values"]) == [n["id"] for n in MICROGRAD_GRAPH["nodes"]]
    assert client.get(response.headers["Location"]).get_json() == body


def test_graph_of_thousands_of_nodes_in_the_request_runs_compiled(client, monkeypatch):
    # A large graph is read as columns and run by the compiled program from its arrays.
    sizes, run = [], compiled_evaluate.run_columns
    monkeypatch.setattr(
        compiled_evaluate, "run_columns", lambda c: sizes.append(len(c.ids)) or run(c)
    )
    n = sys.modules["engine.evaluate"].COMPILED_FROM_NODES  # (engine.evaluate is the function)
    response = client.post("/v1/graphs", json=chain(n))
    assert response.status_code == 201 and sizes == [n]
    x = 0.5
    for _ in range(n - 1):
        x = math.tanh(x)
    assert response.get_json()["result"]["value"] == x  # math.tanh's floats, node by node


def test_graph_over_the_inline_threshold_is_queued_then_evaluated(make_app, worker_env):
    client = make_app(GRAPH_INLINE_MAX_NODES=10).test_client()
    response = client.post("/v1/graphs", json=chain(11))
    assert response.status_code == 202
    assert "Preference-Applied" not in response.headers
    queued = response.get_json()
    assert queued["status"] == "queued" and "result" not in queued
    assert client.get(response.headers["Location"]).get_json()["status"] == "queued"
    jobs.evaluate_graph(queued["id"])
    done = client.get(response.headers["Location"]).get_json()
    assert done["status"] == "succeeded"
    x, derivative = 0.5, 1.0
    for _ in range(10):  # d tanh(x)/dx = 1 - tanh(x)^2, by the chain rule
        derivative *= 1 - math.tanh(x) ** 2
        x = math.tanh(x)
    assert done["result"]["value"] == pytest.approx(x)
    assert done["result"]["grads"]["n0"] == pytest.approx(derivative)


def test_graph_prefer_respond_async_is_queued(client, worker_env):
    response = client.post(
        "/v1/graphs", json=MICROGRAD_GRAPH, headers={"Prefer": "wait=1, respond-async"}
    )
    assert response.status_code == 202  # no worker here: still queued after the wait
    assert response.headers["Preference-Applied"] == "respond-async, wait=1"
    graph_id = response.get_json()["id"]
    jobs.evaluate_graph(graph_id)
    result = client.get(f"/v1/graphs/{graph_id}").get_json()["result"]
    assert result["value"] == pytest.approx(MICROGRAD_FIGURES["value"], abs=1e-4)


def test_graph_prefer_return_minimal_gives_the_result_s_summary(client, worker_env):
    """`Prefer: return=minimal`: the result as its output, value and count of nodes, in the
    request and when read (queued or not); without it, every node's value and gradient."""
    posted = client.post("/v1/graphs", json=MICROGRAD_GRAPH, headers={"Prefer": "return=minimal"})
    assert posted.status_code == 201
    assert posted.headers["Preference-Applied"] == "return=minimal"
    summary = posted.get_json()["result"]
    assert summary.keys() == {"output", "value", "nodes"} and summary["output"] == "g"
    assert summary["value"] == pytest.approx(MICROGRAD_FIGURES["value"], abs=1e-4)
    assert summary["nodes"] == len(MICROGRAD_GRAPH["nodes"])
    location = posted.headers["Location"]
    read = client.get(location, headers={"Prefer": "return=minimal"})
    assert read.get_json()["result"] == summary
    assert read.headers["Preference-Applied"] == "return=minimal" and "Prefer" in read.vary
    whole = client.get(location).get_json()["result"]
    assert whole["grads"]["a"] == pytest.approx(MICROGRAD_FIGURES["a"], abs=1e-4)
    assert whole["value"] == read.get_json()["result"]["value"]
    drawn = client.get(location, headers={"Accept": DOT, "Prefer": "return=minimal"})
    assert drawn.mimetype == DOT and "Preference-Applied" not in drawn.headers

    queued = client.post(
        "/v1/graphs", json=chain(12), headers={"Prefer": "respond-async, return=minimal"}
    )
    assert queued.headers["Preference-Applied"] == "respond-async, return=minimal"
    assert "result" not in queued.get_json()
    jobs.evaluate_graph(queued.get_json()["id"])
    done = client.get(queued.headers["Location"], headers={"Prefer": "return=minimal"})
    result = done.get_json()["result"]
    assert result.keys() == {"output", "value", "nodes"} and result["nodes"] == 12
    assert result["value"] == client.get(queued.headers["Location"]).get_json()["result"]["value"]


def test_graph_queued_that_fails_keeps_a_problem_naming_the_node(client, worker_env):
    doc = {
        "nodes": [
            {"id": "z", "op": "input", "value": 0.0},
            {"id": "l", "op": "log", "inputs": ["z"]},
        ]
    }
    graph_id = client.post("/v1/graphs", json=doc, headers={"Prefer": "respond-async"}).get_json()[
        "id"
    ]
    jobs.evaluate_graph(graph_id)
    body = client.get(f"/v1/graphs/{graph_id}").get_json()
    assert body["status"] == "failed"
    assert body["error"]["node"] == "l" and "'l'" in body["error"]["detail"]


def test_graph_over_the_node_limit_is_refused(make_app):
    client = make_app(MAX_GRAPH_NODES=100).test_client()
    response = client.post("/v1/graphs", json=chain(101))
    check_problem(response.status_code, response.content_type, response.get_json(), 422, "nodes")
    assert "100" in response.get_json()["detail"]
    assert client.post("/v1/graphs", json=chain(100)).status_code == 201


def test_graph_result_is_stored_with_a_time_to_live(client, store):
    graph_id = client.post("/v1/graphs", json=MICROGRAD_GRAPH).get_json()["id"]
    ttl = store.redis.ttl(store.keys.graph(graph_id))
    assert 0 < ttl <= settings.GRAPH_TTL


# -- a graph drawn as DOT ------------------------------------------------------------------


DOT = "text/vnd.graphviz"


def records_by_label(text):
    records, _, _, _ = drawing(text)
    return {label: (data, grad) for label, data, grad in records.values()}


@pytest.mark.parametrize("async_", [False, True], ids=["in-the-request", "queued"])
def test_graph_is_drawn_as_dot_with_each_value_and_gradient(client, worker_env, async_):
    headers = {"Prefer": "respond-async"} if async_ else {}
    graph_id = client.post("/v1/graphs", json=MICROGRAD_GRAPH, headers=headers).get_json()["id"]
    if async_:
        jobs.evaluate_graph(graph_id)
    response = client.get(f"/v1/graphs/{graph_id}", headers={"Accept": DOT})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == f"{DOT}; charset=utf-8"
    assert "Accept" in response.headers["Vary"]
    drawn = records_by_label(response.get_data(as_text=True))  # pydot reads it
    assert sorted(drawn) == sorted(n["id"] for n in MICROGRAD_GRAPH["nodes"])
    assert drawn["a"] == (-4.0, pytest.approx(MICROGRAD_FIGURES["a"], abs=1e-4))
    assert drawn["b"][1] == pytest.approx(MICROGRAD_FIGURES["b"], abs=1e-4)
    assert drawn["g"] == (pytest.approx(MICROGRAD_FIGURES["value"], abs=1e-4), 1.0)


@pytest.mark.parametrize("accept", [None, "*/*", "application/json", "application/*, text/*;q=0.5"])
def test_graph_is_json_by_default(client, accept):
    graph_id = client.post("/v1/graphs", json=MICROGRAD_GRAPH).get_json()["id"]
    response = client.get(f"/v1/graphs/{graph_id}", headers={"Accept": accept} if accept else {})
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.get_json()["result"]["grads"]["a"] == pytest.approx(MICROGRAD_FIGURES["a"])


@pytest.mark.parametrize("accept", ["image/png", "application/problem+json", "text/html"])
def test_graph_in_another_type_is_406_listing_the_types_served(client, accept):
    graph_id = client.post("/v1/graphs", json=MICROGRAD_GRAPH).get_json()["id"]
    response = client.get(f"/v1/graphs/{graph_id}", headers={"Accept": accept})
    check_problem(response.status_code, response.content_type, response.get_json(), 406, None)
    assert response.get_json()["acceptable"] == ["application/json", DOT]


def test_graph_not_evaluated_has_no_dot_but_a_409_naming_its_status(client, worker_env):
    queued = client.post(
        "/v1/graphs", json=MICROGRAD_GRAPH, headers={"Prefer": "respond-async"}
    ).get_json()["id"]
    response = client.get(f"/v1/graphs/{queued}", headers={"Accept": DOT})
    check_problem(response.status_code, response.content_type, response.get_json(), 409, None)
    assert response.get_json()["graph_status"] == "queued"
    doc = {
        "nodes": [{"id": "z", "op": "input", "value": 0}, {"id": "l", "op": "log", "inputs": ["z"]}]
    }
    failed = client.post("/v1/graphs", json=doc, headers={"Prefer": "respond-async"}).get_json()
    jobs.evaluate_graph(failed["id"])
    response = client.get(f"/v1/graphs/{failed['id']}", headers={"Accept": DOT})
    assert response.status_code == 409 and response.get_json()["graph_status"] == "failed"
    assert "Not a finite number" in response.get_json()["detail"]
    unknown = client.get(f"/v1/graphs/{ID}", headers={"Accept": DOT})
    assert unknown.status_code == 404


def test_large_graph_as_dot_shows_the_output_neighbourhood_with_a_note(make_app):
    client = make_app(HEAVY_BODY_BYTES=1000, HEAVY_WAIT=1).test_client()  # every step heavy
    response = client.post("/v1/graphs", json=chain(1000))
    assert response.status_code == 201
    text = client.get(response.headers["Location"], headers={"Accept": DOT}).get_data(as_text=True)
    drawn = records_by_label(text)
    assert len(drawn) == 200 and "n999" in drawn and "n0" not in drawn
    assert drawn["n999"][1] == 1.0
    assert "showing 200 of 1000 values" in text


def test_a_heavy_request_waits_for_its_slot_and_gives_it_back(make_app):
    app = make_app(HEAVY_BODY_BYTES=1000, HEAVY_REQUESTS=1, HEAVY_WAIT=0.2)
    client, slots = app.test_client(), app.extensions["gradserve"].heavy
    for _ in range(3):  # each gives its slot back when it ends
        assert client.post("/v1/graphs", json=chain(100)).status_code == 201
    assert client.post("/v1/graphs", json=chain(3)).status_code == 201  # light: no slot
    assert slots.acquire(timeout=0)  # another heavy request holds the only slot
    try:
        response = client.post("/v1/graphs", json=chain(100))
        check_problem(response.status_code, response.content_type, response.get_json(), 503, None)
        assert response.get_json()["type"].endswith("/busy")
        assert response.headers["Retry-After"] == str(settings.RETRY_AFTER)
        assert client.post("/v1/graphs", json=chain(3)).status_code == 201
    finally:
        slots.release()
    assert client.post("/v1/graphs", json=chain(100)).status_code == 201


# -- gzip ---------------------------------------------------------------------------------


def test_large_responses_are_gzipped_when_the_client_accepts_it(client, worker_env):
    job = client.post("/v1/jobs", json=small_spec(steps=300)).get_json()
    jobs.run_training(job["id"])
    for _ in range(3):
        client.post("/v1/jobs", json=small_spec())
    graph = client.post("/v1/graphs", json=chain(100)).headers["Location"]
    for path in (f"/v1/jobs/{job['id']}/history", graph, "/v1/jobs"):  # history, result, list
        plain = client.get(path)
        squeezed = client.get(path, headers={"Accept-Encoding": "br;q=1.0, gzip;q=0.8"})
        refused = client.get(path, headers={"Accept-Encoding": "gzip;q=0, br"})
        assert len(plain.get_data()) >= settings.GZIP_MIN_BYTES, path
        assert squeezed.headers["Content-Encoding"] == "gzip"
        assert "Accept-Encoding" in squeezed.headers["Vary"]
        assert int(squeezed.headers["Content-Length"]) == len(squeezed.get_data())
        assert gzip.decompress(squeezed.get_data()) == plain.get_data()
        assert len(squeezed.get_data()) < len(plain.get_data())
        assert "Content-Encoding" not in plain.headers and "Content-Encoding" not in refused.headers
        assert "Accept-Encoding" in plain.headers["Vary"]  # caches keep the two apart


def test_small_responses_and_event_streams_are_never_gzipped(make_app):
    app = make_app()

    @app.get("/test-events")
    def events():
        return app.response_class("data: x\n\n" * 1000, mimetype="text/event-stream")

    @app.get("/test-stream")
    def stream():
        return app.response_class((f"data: {i}\n\n" for i in range(1000)), mimetype="text/plain")

    client = app.test_client()
    small = client.get("/healthz", headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in small.headers and small.get_json() == {"status": "ok"}
    for path in ("/test-events", "/test-stream"):
        response = client.get(path, headers={"Accept-Encoding": "gzip"})
        assert "Content-Encoding" not in response.headers
        assert response.get_data(as_text=True).startswith("data: ")


def test_the_size_threshold_is_a_setting(make_app):
    client = make_app(GZIP_MIN_BYTES=10).test_client()
    response = client.get("/openapi.json", headers={"Accept-Encoding": "gzip"})
    assert response.headers["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(response.get_data()))["info"]["title"] == "gradserve"


@pytest.mark.parametrize("level", [1, 6, 9])  # 1 by ISA-L's igzip, the others by zlib
def test_every_level_is_plain_gzip_of_the_same_body(make_app, level):
    client = make_app(GZIP_LEVEL=level).test_client()
    graph = client.post("/v1/graphs", json=chain(300)).headers["Location"]
    plain = client.get(graph).get_data()
    squeezed = [client.get(graph, headers={"Accept-Encoding": "gzip"}) for _ in range(2)]
    assert squeezed[0].get_data() == squeezed[1].get_data()  # no timestamp: the same bytes
    assert gzip.decompress(squeezed[0].get_data()) == plain
    assert len(squeezed[0].get_data()) < len(plain) / 2


# -- the request body ---------------------------------------------------------------------


def chunked(client, path, data):
    """A POST with no Content-Length, its body ended by the server (as a chunked one is)."""
    return client.post(
        path,
        input_stream=io.BytesIO(data),
        content_type="application/json",
        environ_overrides={"wsgi.input_terminated": True},
    )


def test_chunked_body_over_the_limit_is_413_not_a_cut_body(make_app):
    client = make_app(MAX_CONTENT_LENGTH=1000).test_client()
    body = json.dumps(chain(100)).encode()
    assert len(body) > 1000
    response = chunked(client, "/v1/graphs", body)
    check_problem(response.status_code, response.content_type, response.get_json(), 413, None)
    small = json.dumps(chain(3)).encode()
    assert chunked(client, "/v1/graphs", small).status_code == 201


def test_body_shorter_than_its_content_length_is_400(client):
    response = client.post(
        "/v1/graphs",
        input_stream=io.BytesIO(b'{"nodes": []}'),
        content_type="application/json",
        environ_overrides={"CONTENT_LENGTH": "100"},  # the client closed after 13 bytes
    )
    check_problem(response.status_code, response.content_type, response.get_json(), 400, None)
    assert "ended after 13 of its 100 bytes" in response.get_json()["detail"]


# -- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, method, path, kwargs, status, where", BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS]
)
def test_bad_input_is_a_clear_problem(client, request, name, method, path, kwargs, status, where):
    # A model is trained only for the cases that need one (predict); a queued job will do
    # for the others.
    if "{model}" in path:
        trained = request.getfixturevalue("trained")
        path = path.format(job=trained["id"], model=trained["model_id"])
    elif "{job}" in path:
        path = path.format(job=client.post("/v1/jobs", json=small_spec()).get_json()["id"])
    response = send(client, method, path, kwargs)
    check_problem(response.status_code, response.content_type, response.get_json(), status, where)
    if status == 405:
        assert response.headers["Allow"]


def test_body_over_the_size_limit_is_413(make_app):
    client = make_app(MAX_CONTENT_LENGTH=1000).test_client()
    response = client.post("/v1/graphs", json=chain(100))
    check_problem(response.status_code, response.content_type, response.get_json(), 413, None)
    assert "1000 bytes" in response.get_json()["detail"]


@pytest.mark.parametrize(
    "spec",
    [
        {"steps": 100_000},
        {"dataset": {"name": "moons", "samples": 100_000}},
        {"model": {"inputs": 2, "layers": [300, 327, 1]}},  # 100,128 parameters
    ],
)
def test_default_limits_admit_what_the_contract_promises(client, spec):
    """Each of the contract's minimums alone, the demo's sizes for the rest."""
    assert settings.MAX_CONTENT_LENGTH >= 32 * 1024 * 1024 and settings.MAX_GRAPH_NODES >= 500_000
    response = client.post("/v1/jobs", json=spec)
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["spec"]["timeout"] == settings.JOB_TIMEOUT_DEFAULT


def test_default_limits_refuse_a_runaway_job_naming_its_work_and_memory(client):
    """2-997-997-1 on 1,000,000 samples for 1,000,000 steps: a trillion times the cap of
    work, and more memory than a worker may take."""
    spec = {
        "model": {"inputs": 2, "layers": [997, 997, 1]},
        "dataset": {"name": "moons", "samples": 1_000_000},
        "steps": 1_000_000,
    }
    response = client.post("/v1/jobs", json=spec)
    body = response.get_json()
    check_problem(response.status_code, response.content_type, body, 422, "")
    work, memory = (error["message"] for error in body["errors"])
    assert "998,995 x 1,000,000 x 1,000,000 = 998,995,000,000,000,000" in work
    assert f"the cap of {settings.MAX_JOB_WORK:,}" in work
    assert f"the cap of {settings.MAX_JOB_MEMORY:,} bytes" in memory
    one_step = client.post("/v1/jobs", json={**spec, "steps": 1}).get_json()
    assert [e["message"] for e in one_step["errors"]] == [memory]  # refused for its memory
    assert client.get("/v1/jobs").get_json()["items"] == []


def test_a_timeout_above_the_maximum_is_422_and_a_given_one_is_kept(make_app):
    client = make_app(MAX_JOB_TIMEOUT=600, JOB_TIMEOUT_DEFAULT=60).test_client()
    response = client.post("/v1/jobs", json=small_spec(timeout=601))
    check_problem(response.status_code, response.content_type, response.get_json(), 422, "timeout")
    assert "at most 600" in response.get_json()["detail"]
    for given, kept in [({"timeout": 600}, 600), ({}, 60), ({"timeout": None}, 60)]:
        job = client.post("/v1/jobs", json=small_spec(**given)).get_json()
        assert job["spec"]["timeout"] == kept
        assert client.get(f"/v1/jobs/{job['id']}").get_json()["spec"]["timeout"] == kept


def test_configured_limits_are_enforced(make_app, trained):
    client = make_app(
        MAX_STEPS=50, MAX_SAMPLES=20, MAX_PARAMETERS=10, MAX_PREDICT_ROWS=2
    ).test_client()
    for spec, where in [
        (small_spec(steps=51), "steps"),
        (small_spec(dataset={"samples": 21}), "dataset/samples"),
        (small_spec(model={"layers": [4, 1]}), "model/layers"),
        (small_spec(timeout=0), "timeout"),
    ]:
        response = client.post("/v1/jobs", json=spec)
        check_problem(response.status_code, response.content_type, response.get_json(), 422, where)
    response = client.post(f"/v1/models/{trained['model_id']}/predict", json={"x": [[0, 0]] * 3})
    check_problem(response.status_code, response.content_type, response.get_json(), 422, "x")
    # small_spec: 17 parameters x 16 samples x 5 steps = 1,360 of work
    client = make_app(MAX_JOB_WORK=1_359).test_client()
    response = client.post("/v1/jobs", json=small_spec())
    check_problem(response.status_code, response.content_type, response.get_json(), 422, "")
    assert "= 1,360, is above the cap of 1,359" in response.get_json()["detail"]
    client = make_app(MAX_JOB_WORK=1_360).test_client()
    assert client.post("/v1/jobs", json=small_spec()).status_code == 202


def test_responses_are_strict_json(app):
    with pytest.raises(ValueError):
        app.json.dumps({"loss": float("nan")})
    with pytest.raises(ValueError):
        app.json.loads('{"x": Infinity}')


# -- jobs ---------------------------------------------------------------------------------


def test_job_submission_is_queued_with_its_defaults_filled(client, store):
    response = client.post("/v1/jobs", json={"steps": 7})
    assert response.status_code == 202
    job = response.get_json()
    assert response.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] == "queued" and job["progress"] == {"step": 0, "steps": 7}
    assert job["spec"]["loss"] == "hinge" and job["spec"]["model"]["layers"] == [16, 16, 1]
    assert job["started_at"] is None and job["model_id"] is None and job["error"] is None
    assert client.get(f"/v1/jobs/{job['id']}").get_json() == job


def test_job_is_enqueued_as_json_never_pickle(client, store):
    job_id = client.post("/v1/jobs", json=small_spec()).get_json()["id"]
    queue = make_queue(store.redis, settings.__dict__)
    assert queue.job_ids == [f"train-{job_id}"]
    raw = store.redis.hget(f"rq:job:train-{job_id}", "data")
    function, _, args, _ = json.loads(zlib.decompress(raw))
    assert function == "service.worker.jobs.run_training" and args == [job_id]
    rq_job = Job.fetch(f"train-{job_id}", connection=store.redis, serializer=JSONSerializer)
    assert rq_job.args == [job_id]


def test_history_is_whole_and_since_filters_it(client, trained):
    history = client.get(f"/v1/jobs/{trained['id']}/history").get_json()
    assert history["job_id"] == trained["id"]
    assert history["step"] == [0, 1, 2, 3, 4]
    assert len(history["loss"]) == len(history["accuracy"]) == 5
    later = client.get(f"/v1/jobs/{trained['id']}/history?since=3").get_json()
    assert later["step"] == [3, 4] and later["loss"] == history["loss"][3:]
    assert trained["metrics"] == {"loss": history["loss"][-1], "accuracy": history["accuracy"][-1]}


def test_model_and_predict_agree_with_a_forward_pass(client, trained):
    model = client.get(f"/v1/models/{trained['model_id']}").get_json()
    assert model["job_id"] == trained["id"] and model["loss"] == "hinge"
    assert model["model"] == {"inputs": 2, "layers": [4, 1], "activation": "relu"}
    assert len(model["parameters"]) == 4 * 3 + 5
    x = [[0.5, -0.25], [1.5, 0.75], [-1.0, 0.0]]
    y = client.post(f"/v1/models/{model['id']}/predict", json={"x": x}).get_json()["y"]
    assert y == pytest.approx(forward(model, x)[:, 0].tolist(), rel=1e-12)


def test_cancel_of_a_queued_job_is_at_once_and_final(client, worker_env):
    job_id = client.post("/v1/jobs", json=small_spec()).get_json()["id"]
    response = client.post(f"/v1/jobs/{job_id}/cancel")
    assert response.status_code == 200
    job = response.get_json()
    assert job["status"] == "cancelled" and job["finished_at"]
    jobs.run_training(job_id)  # a worker that picks it up later skips it
    again = client.post(f"/v1/jobs/{job_id}/cancel")
    check_problem(again.status_code, again.content_type, again.get_json(), 409, None)
    job = client.get(f"/v1/jobs/{job_id}").get_json()
    assert job["status"] == "cancelled" and job["started_at"] is None
    assert client.get(f"/v1/jobs/{job_id}/history").get_json()["step"] == []


def test_cancel_of_a_finished_job_is_409(client, trained):
    response = client.post(f"/v1/jobs/{trained['id']}/cancel")
    check_problem(response.status_code, response.content_type, response.get_json(), 409, None)
    assert client.get(f"/v1/jobs/{trained['id']}").get_json()["status"] == "succeeded"


# -- pagination ---------------------------------------------------------------------------


def test_list_pages_newest_first_until_the_cursor_is_null(client):
    made = [
        client.post("/v1/jobs", json=small_spec(steps=i + 1)).get_json()["id"] for i in range(7)
    ]
    seen, cursor, pages = [], None, 0
    while True:
        query = "limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(f"/v1/jobs?{query}").get_json()
        seen += [job["id"] for job in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == made[::-1] and pages == 3


def test_list_cursor_is_stable_while_new_jobs_arrive(client):
    made = [client.post("/v1/jobs", json=small_spec()).get_json()["id"] for _ in range(4)]
    first = client.get("/v1/jobs?limit=2").get_json()
    client.post("/v1/jobs", json=small_spec())  # newer: it belongs before page one
    second = client.get(f"/v1/jobs?limit=2&cursor={first['next_cursor']}").get_json()
    assert [j["id"] for j in first["items"] + second["items"]] == made[::-1]


def test_list_filters_by_status(client):
    kept = client.post("/v1/jobs", json=small_spec()).get_json()["id"]
    cancelled = client.post("/v1/jobs", json=small_spec()).get_json()["id"]
    client.post(f"/v1/jobs/{cancelled}/cancel")
    assert [j["id"] for j in client.get("/v1/jobs?status=queued").get_json()["items"]] == [kept]
    listed = client.get("/v1/jobs?status=cancelled").get_json()["items"]
    assert [j["id"] for j in listed] == [cancelled]


def test_list_default_page_size(client):
    for _ in range(settings.PAGE_SIZE + 1):
        client.post("/v1/jobs", json=small_spec())
    page = client.get("/v1/jobs").get_json()
    assert len(page["items"]) == settings.PAGE_SIZE and page["next_cursor"]


# -- idempotency --------------------------------------------------------------------------


def test_idempotency_key_with_the_same_body_gives_the_same_job(client, store):
    body = small_spec(steps=3)
    first = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": "order-1"})
    # the same JSON, spaced and ordered otherwise
    again = client.post(
        "/v1/jobs",
        data=json.dumps(dict(reversed(body.items())), indent=2),
        content_type="application/json",
        headers={"Idempotency-Key": "order-1"},
    )
    assert first.status_code == again.status_code == 202
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == first.headers["Location"]
    assert len(client.get("/v1/jobs").get_json()["items"]) == 1
    assert len(make_queue(store.redis, settings.__dict__).job_ids) == 1


def test_idempotency_key_with_another_body_is_422(client):
    client.post("/v1/jobs", json=small_spec(steps=3), headers={"Idempotency-Key": "order-2"})
    response = client.post(
        "/v1/jobs", json=small_spec(steps=4), headers={"Idempotency-Key": "order-2"}
    )
    check_problem(response.status_code, response.content_type, response.get_json(), 422, None)
    assert "Idempotency-Key" in response.get_json()["detail"]
    assert len(client.get("/v1/jobs").get_json()["items"]) == 1


def test_different_idempotency_keys_make_different_jobs(client):
    ids = {
        client.post("/v1/jobs", json=small_spec(), headers={"Idempotency-Key": key}).get_json()[
            "id"
        ]
        for key in ("a", "b")
    }
    assert len(ids) == 2


# -- health and documentation -------------------------------------------------------------


def test_liveness_and_readiness(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").get_json() == {"status": "ready"}


def test_readiness_is_a_quick_503_when_redis_is_unreachable(redis_client):
    closed = redis_server.url(redis_server.free_port())
    client = create_app({"TESTING": True, "REDIS_URL": closed}).test_client()
    assert client.get("/healthz").status_code == 200
    started = time.monotonic()
    response = client.get("/readyz")
    assert time.monotonic() - started < 3
    check_problem(response.status_code, response.content_type, response.get_json(), 503, None)


def test_a_request_without_redis_is_a_503_problem_not_a_500(make_app):
    closed = redis_server.url(redis_server.free_port())
    client = make_app(REDIS_URL=closed).test_client()  # its key cannot be checked either
    response = client.post("/v1/jobs", json=small_spec())
    check_problem(response.status_code, response.content_type, response.get_json(), 503, None)
    assert response.headers["Retry-After"]


def test_openapi_document_describes_every_endpoint(client):
    document = client.get("/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    assert {
        "/v1/graphs",
        "/v1/graphs/{graph_id}",
        "/v1/jobs",
        "/v1/jobs/{job_id}",
        "/v1/jobs/{job_id}/history",
        "/v1/jobs/{job_id}/data",
        "/v1/jobs/{job_id}/cancel",
        "/v1/models/{model_id}",
        "/v1/models/{model_id}/predict",
        "/healthz",
        "/readyz",
    } <= set(paths)
    post_graph = paths["/v1/graphs"]["post"]
    assert {"201", "202", "413", "415", "422"} <= set(post_graph["responses"])
    assert "application/json" in post_graph["requestBody"]["content"]
    problem = document["components"]["responses"]["UNPROCESSABLE_ENTITY"]
    assert "application/problem+json" in problem["content"]
    schemas = document["components"]["schemas"]
    assert {"Graph", "Job", "JobSpec", "History", "Model", "Problem"} <= set(schemas)
    assert schemas["JobSpec"]["properties"]["loss"]["enum"] == ["hinge", "mse", "bce", "ce"]
    assert "/JobResourceSpec" in json.dumps(schemas["Job"]["properties"]["spec"])
    assert "/DataSummary" in json.dumps(schemas["JobResourceSpec"]["properties"]["data"])
    assert "/InlineData" in json.dumps(schemas["JobSpec"]["properties"]["data"])
    assert set(schemas["DataSummary"]["properties"]) == {"samples", "features", "sha256"}
    assert "next_since" in schemas["History"]["properties"]
    assert {"limit", "since"} <= {
        p["name"] for p in paths["/v1/jobs/{job_id}/history"]["get"]["parameters"]
    }
    assert "204" in paths["/v1/jobs/{job_id}"]["delete"]["responses"]
    assert "204" in paths["/v1/models/{model_id}"]["delete"]["responses"]
    assert client.get("/docs").status_code == 200
    assert client.get("/redoc").status_code == 200


def test_unknown_ids_are_404_not_500(client):
    for path in (f"/v1/jobs/{ID}", f"/v1/graphs/{ID}", f"/v1/models/{ID}", "/v1/jobs/x"):
        response = client.get(path)
        check_problem(response.status_code, response.content_type, response.get_json(), 404, None)
