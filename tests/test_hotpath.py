"""The hot path (service/api/hotpath.py) answers the polled job GET and the small graph
POST below Flask. Each of its answers is the one Flask's own route gives (status, headers,
body), every request is counted once whichever of the two answers it, and a request it
begins but does not finish (no such job, an answer to gzip) Flask finishes with nothing
counted or written twice; a spent budget's 429 is Flask's, made below it. On the real
Redis, each request made twice: through the app as served (hot path first) and through
Flask alone."""

import gzip
import json
import time

import pytest
from flask import Flask
from werkzeug.test import Client

from service.api.handover import KEY as HANDED_OVER
from service.api.metrics import ROUTE as ANSWERED_BELOW_FLASK
from service.store import ApiKeys

from .service_helpers import ID, MICROGRAD_FIGURES, MICROGRAD_GRAPH, check_problem, small_spec

VARYING = {"Date", "RateLimit-Remaining", "RateLimit-Reset", "Location", "Content-Length"}
"""Headers that differ between two requests made one after the other."""
HANDED_FLASK_HANDED = ["handed over", "flask", "handed over"]
LIMITS = {"RATE_LIMIT": "100/minute", "RATE_LIMIT_SUBMIT": "40/minute"}


class Keyed(Client):
    """A client of a WSGI app that sends `key` (a request's own Authorization header wins)
    and keeps, on each response, the environ the app was given (`response.seen`)."""

    def __init__(self, app, key: str) -> None:
        def seen(environ, start):
            self.environ = environ
            return app(environ, start)

        super().__init__(seen)
        self.key = key

    def open(self, *args, **kwargs):
        kwargs["headers"] = {"Authorization": f"Bearer {self.key}", **kwargs.get("headers", {})}
        response = super().open(*args, **kwargs)
        response.seen = self.environ
        return response


def served(app: Flask, key: str) -> Keyed:
    """A client of the app as gunicorn serves it: the hot path first."""
    return Keyed(app, key)


def flask_alone(app: Flask, key: str) -> Keyed:
    """A client of the app without the hot path: Flask's own wsgi_app, under no middleware."""
    return Keyed(lambda environ, start: Flask.wsgi_app(app, environ, start), key)


def how_answered(response) -> str:
    environ = response.seen
    if ANSWERED_BELOW_FLASK in environ:
        return "hot"
    return "handed over" if HANDED_OVER in environ else "flask"


def same_answer(hot, flask, ids=()) -> None:
    """The same status, headers (but those that vary between two requests) and body (its
    ids apart), and both counted."""
    assert hot.status == flask.status
    assert {k: v for k, v in hot.headers if k not in VARYING} == {
        k: v for k, v in flask.headers if k not in VARYING
    }
    body = flask.get_data()
    for old, new in ids:
        body = body.replace(old.encode(), new.encode())
    assert hot.get_data() == body


def remaining(response) -> int:
    return int(response.headers["RateLimit-Remaining"])


@pytest.fixture
def limited(make_app):
    return make_app(**LIMITS)


@pytest.fixture
def pair(limited, api_key):
    return served(limited, api_key), flask_alone(limited, api_key)


def submitted(client, **spec) -> str:
    response = client.post("/v1/jobs", json={**small_spec(), **spec})
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]


def test_a_polled_job_is_answered_below_flask_as_flask_answers_it(pair):
    hot, flask = pair
    job_id = submitted(hot)
    first, second, third = (c.get(f"/v1/jobs/{job_id}") for c in (hot, flask, hot))
    assert [how_answered(r) for r in (first, second, third)] == ["hot", "flask", "hot"]
    same_answer(first, second)
    assert first.get_json()["id"] == job_id and first.get_json()["status"] == "queued"
    assert first.headers["Content-Type"] == "application/json"
    assert first.headers["Vary"] == "Prefer"
    assert first.headers["RateLimit-Policy"] == "100;w=60"
    assert remaining(first) - 1 == remaining(second) == remaining(third) + 1  # one each


def test_with_auth_off_every_request_is_tenant_locals_on_the_hot_path_too(make_app, api_key):
    app = make_app(AUTH="off", **LIMITS)
    hot, flask = served(app, api_key), flask_alone(app, api_key)  # the key is ignored
    job_id = submitted(hot)
    first, second = (c.get(f"/v1/jobs/{job_id}") for c in (hot, flask))
    assert [how_answered(r) for r in (first, second)] == ["hot", "flask"]
    same_answer(first, second)
    assert remaining(first) - 1 == remaining(second)  # one budget: the client address's
    posted = hot.post("/v1/graphs", json=MICROGRAD_GRAPH)
    assert how_answered(posted) == "hot" and posted.status_code == 201
    assert flask.get(posted.headers["Location"]).status_code == 200  # tenant local's


def test_a_small_graph_is_evaluated_below_flask_as_flask_evaluates_it(pair):
    hot, flask = pair
    first, second = (c.post("/v1/graphs", json=MICROGRAD_GRAPH) for c in (hot, flask))
    assert [how_answered(r) for r in (first, second)] == ["hot", "flask"]
    same_answer(first, second, [(second.get_json()["id"], first.get_json()["id"])])
    result = first.get_json()["result"]
    assert result["value"] == pytest.approx(MICROGRAD_FIGURES["value"], abs=1e-4)
    assert result["grads"]["a"] == pytest.approx(MICROGRAD_FIGURES["a"], abs=1e-4)
    assert result["grads"]["b"] == pytest.approx(MICROGRAD_FIGURES["b"], abs=1e-4)
    assert first.headers["Location"] == f"/v1/graphs/{first.get_json()['id']}"
    assert first.headers["RateLimit-Policy"] == "40;w=60"  # the tighter budget: submissions
    assert remaining(first) - 1 == remaining(second)
    stored = flask.get(first.headers["Location"])  # stored, and drawn from what was stored
    assert stored.status_code == 200 and stored.get_json() == first.get_json()
    dot = flask.get(first.headers["Location"], headers={"Accept": "text/vnd.graphviz"})
    assert dot.status_code == 200 and "138.8338" in dot.get_data(as_text=True)


def test_a_remembered_job_body_follows_its_record_and_its_tenant(pair, limited):
    hot, flask = pair
    job_id = submitted(hot)
    polls = [hot.get(f"/v1/jobs/{job_id}") for _ in range(2)]  # the second: remembered
    assert polls[0].get_data() == polls[1].get_data()
    assert flask.post(f"/v1/jobs/{job_id}/cancel").status_code == 200  # its record changes
    changed, alone = (c.get(f"/v1/jobs/{job_id}") for c in (hot, flask))
    assert how_answered(changed) == "hot" and changed.get_json()["status"] == "cancelled"
    same_answer(changed, alone)
    other = served(limited, ApiKeys(limited.extensions["gradserve"].store.redis).create("x")[1])
    assert other.get(f"/v1/jobs/{job_id}").status_code == 404  # not its job, remembered or not


@pytest.mark.parametrize("case", ["another tenant's", "no such job"])
def test_a_job_not_found_is_flasks_404_counted_once(pair, limited, case):
    hot, flask = pair
    job_id = ID
    if case == "another tenant's":
        other = ApiKeys(limited.extensions["gradserve"].store.redis).create("other")[1]
        job_id = submitted(served(limited, other))
    first, second, third = (c.get(f"/v1/jobs/{job_id}") for c in (hot, flask, hot))
    assert [how_answered(r) for r in (first, second, third)] == HANDED_FLASK_HANDED
    same_answer(first, second)
    body = first.get_json()
    check_problem(first.status_code, first.headers["Content-Type"], body, 404, None)
    assert job_id in body["detail"]
    assert remaining(first) - 1 == remaining(second) == remaining(third) + 1


def test_a_record_that_cannot_be_read_is_flasks_500_problem(pair, limited):
    hot, flask = pair
    job_id = submitted(hot)
    store = limited.extensions["gradserve"].store
    store.redis.hset(store.keys.job(job_id), "progress", "{not json")  # damaged
    first, second = (c.get(f"/v1/jobs/{job_id}") for c in (hot, flask))
    assert how_answered(first) == "handed over"
    same_answer(first, second)
    check_problem(first.status_code, first.headers["Content-Type"], first.get_json(), 500, None)
    assert remaining(first) - 1 == remaining(second)


def test_a_large_job_resource_is_gzipped_by_flask(pair):
    hot, flask = pair
    job_id = submitted(hot, metadata={f"k{i}": "v" * 200 for i in range(8)})  # over 1 KiB
    gzipped = {"Accept-Encoding": "gzip"}
    first, second = (c.get(f"/v1/jobs/{job_id}", headers=gzipped) for c in (hot, flask))
    assert how_answered(first) == "handed over"
    same_answer(first, second)
    assert first.headers["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(first.get_data()))["metadata"]["k7"] == "v" * 200
    assert remaining(first) - 1 == remaining(second)


def test_a_spent_budget_is_flasks_429_made_below_flask_and_spends_nothing(make_app, api_key):
    app = make_app(RATE_LIMIT="3/minute")
    hot, flask = served(app, api_key), flask_alone(app, api_key)
    job_id = submitted(hot)  # one of the three
    for client in (hot, flask):
        assert client.get(f"/v1/jobs/{job_id}").status_code == 200
    refused = [c.get(f"/v1/jobs/{job_id}") for c in (hot, flask, hot)]
    assert [how_answered(r) for r in refused] == ["hot", "flask", "hot"]
    same_answer(refused[0], refused[1])
    assert refused[0].get_json()["instance"] == f"/v1/jobs/{job_id}"
    assert all(r.status_code == 429 and remaining(r) == 0 for r in refused)
    assert 1 <= int(refused[0].headers["Retry-After"]) <= 60


BAD_GRAPHS = {
    "unknown input": (
        json.dumps(
            {
                "format": "graph/1",
                "nodes": [
                    {"id": "a", "op": "input", "value": 1.0},
                    {"id": "b", "op": "mul", "inputs": ["a", "q"]},
                ],
            }
        ),
        422,
        "nodes/1/inputs/1",
    ),
    "not JSON": ('{"format": "graph/1", "nodes": [', 400, None),
    "a key twice": ('{"format": "graph/1", "format": "graph/1", "nodes": []}', 400, None),
    "no nodes": ('{"format": "graph/1", "nodes": []}', 422, None),
    "a log of 0": (
        json.dumps(
            {
                "format": "graph/1",
                "nodes": [
                    {"id": "z", "op": "input", "value": 0.0},
                    {"id": "y", "op": "log", "inputs": ["z"]},
                ],
            }
        ),
        422,
        None,
    ),
}


@pytest.mark.parametrize("case", BAD_GRAPHS)
def test_a_bad_graph_is_flasks_problem_counted_once(pair, case):
    hot, flask = pair
    body, status, where = BAD_GRAPHS[case]
    typed = {"Content-Type": "application/json"}
    first, second, third = (
        c.post("/v1/graphs", data=body, headers=typed) for c in (hot, flask, hot)
    )
    assert [how_answered(r) for r in (first, second, third)] == ["flask"] * 3  # counted there
    same_answer(first, second)
    check_problem(first.status_code, first.headers["Content-Type"], first.get_json(), status, where)
    assert remaining(first) - 1 == remaining(second) == remaining(third) + 1


def test_a_graph_over_budget_is_flasks_429_and_stores_nothing(make_app, api_key):
    """A small graph is counted and stored in one call, after its evaluation: a refused one
    stores nothing, and the caller's next graphs are counted before any work until its
    budget has room again."""
    app = make_app(RATE_LIMIT_SUBMIT="2/2 seconds")
    hot, flask = served(app, api_key), flask_alone(app, api_key)
    graphs = app.extensions["gradserve"].graphs

    def stored() -> list:
        return sorted(graphs.redis.scan_iter(graphs.keys.graph("*")))

    answered = [hot.post("/v1/graphs", json=MICROGRAD_GRAPH) for _ in range(2)]
    assert [(how_answered(r), r.status_code) for r in answered] == [("hot", 201)] * 2
    before = stored()
    refused = [c.post("/v1/graphs", json=MICROGRAD_GRAPH) for c in (hot, flask)]
    assert [how_answered(r) for r in refused] == ["hot", "flask"]
    same_answer(refused[0], refused[1])
    assert all(r.status_code == 429 for r in refused)
    assert stored() == before  # neither a result nor a document
    # refused of late: counted before its body is even read (this one is no JSON at all)
    unread = hot.post("/v1/graphs", data="{not", headers={"Content-Type": "application/json"})
    assert how_answered(unread) == "hot" and unread.status_code == 429
    time.sleep(int(refused[0].headers["Retry-After"]))  # the budget has room again
    later = hot.post("/v1/graphs", json=MICROGRAD_GRAPH)
    assert how_answered(later) == "hot" and later.status_code == 201


def test_a_large_graph_answer_is_gzipped_by_flask(make_app, api_key):
    app = make_app(GZIP_MIN_BYTES=200, **LIMITS)
    hot, flask = served(app, api_key), flask_alone(app, api_key)
    gzipped = {"Accept-Encoding": "gzip"}
    first, second = (
        c.post("/v1/graphs", json=MICROGRAD_GRAPH, headers=gzipped) for c in (hot, flask)
    )
    assert how_answered(first) == "handed over"
    assert first.status_code == second.status_code == 201
    assert first.headers["Content-Encoding"] == second.headers["Content-Encoding"] == "gzip"
    assert first.headers["Vary"] == second.headers["Vary"]
    answer, alone = (json.loads(gzip.decompress(r.get_data())) for r in (first, second))
    assert answer == {**alone, "id": answer["id"]}
    assert first.headers["Location"] == f"/v1/graphs/{answer['id']}"
    assert answer["result"]["grads"]["a"] == pytest.approx(MICROGRAD_FIGURES["a"], abs=1e-4)
    assert flask.get(first.headers["Location"]).status_code == 200  # written once, there
    assert remaining(first) - 1 == remaining(second)


@pytest.mark.parametrize(
    "request_",
    [
        ("GET", "/v1/jobs/{job}?fresh=1", {}),
        ("GET", "/v1/jobs/{job}", {"Prefer": "wait=1"}),
        ("GET", "/v1/jobs/{job}", {"Authorization": "Bearer gs_000000000000_nope"}),
        ("GET", "/v1/jobs/{job}", {"Authorization": "Basic dXNlcjpwYXNz"}),
        ("POST", "/v1/graphs", {"Prefer": "respond-async"}),
        ("POST", "/v1/graphs", {"Content-Type": "text/plain"}),
    ],
    ids=["query", "prefer wait", "wrong key", "not bearer", "respond-async", "not JSON typed"],
)
def test_what_the_hot_path_does_not_take_goes_to_flask_untouched(pair, request_):
    hot, flask = pair
    method, path, headers = request_
    path = path.format(job=submitted(hot))
    kwargs = {"headers": headers}
    if method == "POST":
        kwargs["data"] = json.dumps(MICROGRAD_GRAPH)
        kwargs["headers"] = {"Content-Type": "application/json", **headers}
    first, second = (c.open(path, method=method, **kwargs) for c in (hot, flask))
    assert how_answered(first) == "flask"
    assert first.status_code == second.status_code
    assert first.headers.get("Content-Type") == second.headers.get("Content-Type")
