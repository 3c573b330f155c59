"""Shared by the service tests: small specs, polling, an independent forward pass, and the
contract's bad inputs (run in-process by test_api and over HTTP by test_e2e)."""

import json
import time
from pathlib import Path

import numpy as np
import psutil
import requests
from flask.testing import FlaskClient

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
MICROGRAD_GRAPH = json.loads((EXAMPLES / "micrograd_graph.json").read_text())
# micrograd's README: g.data, a.grad, b.grad
MICROGRAD_FIGURES = {"value": 24.7041, "a": 138.8338, "b": 645.5773}
ID = "0123456789abcdef0123456789abcdef"  # well formed, never issued
TENANT = "tester"
"""The tenant of the tests' own key (the in-process tests' clients send it)."""


def keyed_client(key):
    """A Flask test client class that sends `key` on every request (a request's own
    `Authorization` header still wins)."""

    class KeyedClient(FlaskClient):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"

    return KeyedClient


def client_with(app, key=None):
    """A test client of `app` that sends `key` (None: no key at all)."""
    cls = FlaskClient if key is None else keyed_client(key)
    return cls(app, app.response_class, use_cookies=True)


class ApiSession(requests.Session):
    """A requests.Session for one running API: paths are read against `base`, and `key`
    goes with every request."""

    def __init__(self, base, key=None):
        super().__init__()
        self.base = base
        if key is not None:
            self.headers["Authorization"] = f"Bearer {key}"

    def request(self, method, url, *args, **kwargs):
        return super().request(
            method, self.base + url if url.startswith("/") else url, *args, **kwargs
        )


def small_spec(**overrides):
    """A job that trains in a blink: 16 moons, a 2-4-1 network, 5 steps."""
    spec = {
        "model": {"inputs": 2, "layers": [4, 1]},
        "dataset": {"name": "moons", "samples": 16},
        "steps": 5,
    }
    spec.update(overrides)
    return spec


def long_spec():
    """A job that runs for minutes unless cancelled."""
    return small_spec(steps=1_000_000)


def wait_until(condition, timeout=30.0, interval=0.02):
    """Poll `condition()` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout} s")
        time.sleep(interval)


def whole_history(fetch, path):
    """A job's whole history, page after page: `fetch(path)` returns a page's JSON."""
    whole, since = {"step": [], "loss": [], "accuracy": []}, 0
    while since is not None:
        page = fetch(f"{path}?since={since}")
        for name, values in whole.items():
            values += page[name]
        since = page["next_since"]
    return whole


def forward(model_doc, x):
    """The MLP's outputs computed here from its parameters (per layer, per neuron: weights
    then bias; hidden layers activated, the last linear): an oracle for predict."""
    act = {
        "relu": lambda h: np.maximum(h, 0),
        "tanh": np.tanh,
        "sigmoid": lambda h: 1 / (1 + np.exp(-h)),
        "linear": lambda h: h,
    }
    arch, params = model_doc["model"], list(model_doc["parameters"])
    h, nin = np.array(x, dtype=float), arch["inputs"]
    for i, nout in enumerate(arch["layers"]):
        neurons = []
        for _ in range(nout):
            w, b = params[:nin], params[nin]
            params = params[nin + 1 :]
            neurons.append(h @ np.array(w) + b)
        h = np.stack(neurons, axis=1)
        if i < len(arch["layers"]) - 1:
            h = act[arch["activation"]](h)
        nin = nout
    assert not params, "every parameter is used"
    return h


def node(id_, op, inputs=None, **extra):
    n = {"id": id_, "op": op}
    if inputs is not None:
        n["inputs"] = inputs
    n.update(extra)
    return n


A = node("a", "input", value=2.0)
B = node("b", "input", value=3.0)

# (name, method, path, request kwargs, status, the error's path (or node) or None)
BAD_INPUTS = [
    ("graph-not-json", "POST", "/v1/graphs", {"data": "{nodes", "json_type": True}, 400, None),
    (
        "graph-nan-token",
        "POST",
        "/v1/graphs",
        {"data": '{"nodes": [{"id": "a", "op": "input", "value": NaN}]}', "json_type": True},
        400,
        None,
    ),
    (
        "graph-text-plain",
        "POST",
        "/v1/graphs",
        {"data": "{}", "content_type": "text/plain"},
        415,
        None,
    ),
    ("graph-no-content-type", "POST", "/v1/graphs", {"data": "{}"}, 415, None),
    (
        "graph-value-1e400",  # a valid JSON number that no float can hold
        "POST",
        "/v1/graphs",
        {"data": '{"nodes": [{"id": "a", "op": "input", "value": 1e400}]}', "json_type": True},
        422,
        "nodes/0/value",
    ),
    (
        "graph-400-digit-value",  # over MAX_JSON_NUMBER_DIGITS: refused as it is read
        "POST",
        "/v1/graphs",
        {
            "data": '{"nodes": [{"id": "a", "op": "input", "value": 1' + "0" * 400 + "}]}",
            "json_type": True,
        },
        400,
        "nodes/0/value",
    ),
    ("graph-empty-body", "POST", "/v1/graphs", {"data": "", "json_type": True}, 422, ""),
    ("graph-array", "POST", "/v1/graphs", {"json": [A]}, 422, ""),
    ("graph-no-nodes", "POST", "/v1/graphs", {"json": {"output": "a"}}, 422, "nodes"),
    ("graph-nodes-not-list", "POST", "/v1/graphs", {"json": {"nodes": {"a": 1}}}, 422, "nodes"),
    ("graph-empty-nodes", "POST", "/v1/graphs", {"json": {"nodes": []}}, 422, "nodes"),
    (
        "graph-unknown-field",
        "POST",
        "/v1/graphs",
        {"json": {"nodes": [A], "extra": 1}},
        422,
        "extra",
    ),
    (
        "graph-unknown-format",
        "POST",
        "/v1/graphs",
        {"json": {"format": "graph/2", "nodes": [A]}},
        422,
        "format",
    ),
    (
        "graph-format-not-string",
        "POST",
        "/v1/graphs",
        {"json": {"format": 1, "nodes": [A]}},
        422,
        "format",
    ),
    ("graph-node-not-object", "POST", "/v1/graphs", {"json": {"nodes": [A, 7]}}, 422, "nodes/1"),
    (
        "graph-unknown-op",
        "POST",
        "/v1/graphs",
        {"json": {"nodes": [node("a", "sqrt", [])]}},
        422,
        "nodes/0/op",
    ),
    (
        "graph-forward-reference",
        "POST",
        "/v1/graphs",
        {"json": {"nodes": [node("c", "neg", ["a"]), A]}},
        422,
        "nodes/0/inputs/0",
    ),
    (
        "graph-unknown-input",
        "POST",
        "/v1/graphs",
        {"json": {"nodes": [A, node("c", "neg", ["q"])]}},
        422,
        "nodes/1/inputs/0",
    ),
    (
        "graph-cycle-to-self",
        "POST",
        "/v1/graphs",
        {"json": {"nodes": [A, node("c", "add", ["a", "c"])]}},
        422,
        "nodes/1/inputs/1",
    ),
    (
        "graph-duplicate-id",
        "POST",
        "/v1/graphs",
        {"json": {"nodes": [A, node("a", "input", value=1.0)]}},
        422,
        "nodes/1/id",
    ),
    (
        "graph-bad-id",
        "POST",
        "/v1/graphs",
        {"json": {"nodes": [node("a b", "input", value=1)]}},
        422,
        "nodes/0/id",
    ),
    (
        "graph-long-id",
        "POST",
        "/v1/graphs",
        {"json": {"nodes": [node("x" * 65, "input", value=1)]}},
        422,
        "nodes/0/id",
    ),
    (
        "graph-input-without-value",
        "POST",
        "/v1/graphs",
        {"json": {"nodes": [node("a", "input")]}},
        422,
        "nodes/0/value",
    ),
    (
        "graph-value-string",
        "POST",
        "/v1/graphs",
        {"json": {"nodes": [node("a", "input", value="1")]}},
        422,
        "nodes/0/value",
    ),
    (
        "graph-value-bool",
        "POST",
        "/v1/graphs",
        {"json": {"nodes": [node("a", "input", value=True)]}},
        422,
        "nodes/0/value",
    ),
    (
        "graph-pow-without-exponent",
        "POST",
        "/v1/graphs",
        {"json": {"nodes": [A, node("p", "pow", ["a"])]}},
        422,
        "nodes/1/attrs/exponent",
    ),
    (
        "graph-sub-arity",
        "POST",
        "/v1/graphs",
        {"json": {"nodes": [A, B, node("s", "sub", ["a", "b", "a"])]}},
        422,
        "nodes/2/inputs",
    ),
    (
        "graph-unknown-output",
        "POST",
        "/v1/graphs",
        {"json": {"nodes": [A], "output": "z"}},
        422,
        "output",
    ),
    (
        "graph-log-of-zero",
        "POST",
        "/v1/graphs",
        {"json": {"nodes": [node("z", "input", value=0), node("l", "log", ["z"])]}},
        422,
        "node:l",
    ),
    (
        "graph-divide-by-zero",
        "POST",
        "/v1/graphs",
        {"json": {"nodes": [A, node("z", "input", value=0), node("q", "div", ["a", "z"])]}},
        422,
        "node:q",
    ),
    (
        "graph-exp-overflow",
        "POST",
        "/v1/graphs",
        {"json": {"nodes": [node("big", "input", value=1000), node("e", "exp", ["big"])]}},
        422,
        "node:e",
    ),
    (
        "graph-zero-negative-power",
        "POST",
        "/v1/graphs",
        {
            "json": {
                "nodes": [
                    node("z", "input", value=0),
                    node("p", "pow", ["z"], attrs={"exponent": -1}),
                ]
            }
        },
        422,
        "node:p",
    ),
    ("graph-get-unknown", "GET", f"/v1/graphs/{ID}", {}, 404, None),
    ("graph-get-malformed-id", "GET", "/v1/graphs/not-an-id", {}, 404, None),
    ("graphs-delete", "DELETE", "/v1/graphs", {}, 405, None),
    ("job-not-json", "POST", "/v1/jobs", {"data": "steps=5", "json_type": True}, 400, None),
    (
        "job-form",
        "POST",
        "/v1/jobs",
        {"data": "steps=5", "content_type": "application/x-www-form-urlencoded"},
        415,
        None,
    ),
    ("job-array", "POST", "/v1/jobs", {"json": [1]}, 422, ""),
    ("job-unknown-field", "POST", "/v1/jobs", {"json": {"bogus": 1}}, 422, "bogus"),
    ("job-steps-string", "POST", "/v1/jobs", {"json": {"steps": "100"}}, 422, "steps"),
    ("job-steps-float", "POST", "/v1/jobs", {"json": {"steps": 10.5}}, 422, "steps"),
    ("job-steps-zero", "POST", "/v1/jobs", {"json": {"steps": 0}}, 422, "steps"),
    ("job-steps-10e12", "POST", "/v1/jobs", {"json": {"steps": 10**12}}, 422, "steps"),
    (
        "job-25m-parameters",
        "POST",
        "/v1/jobs",
        {"json": {"model": {"layers": [5000, 5000, 1]}}},
        422,
        "model/layers",
    ),
    (
        "job-layer-zero",
        "POST",
        "/v1/jobs",
        {"json": {"model": {"layers": [4, 0, 1]}}},
        422,
        "model/layers/1",
    ),
    (
        "job-layer-string",
        "POST",
        "/v1/jobs",
        {"json": {"model": {"layers": [4, "a", 1]}}},
        422,
        "model/layers/1",
    ),
    (
        "job-unknown-activation",
        "POST",
        "/v1/jobs",
        {"json": {"model": {"activation": "gelu"}}},
        422,
        "model/activation",
    ),
    ("job-unknown-loss", "POST", "/v1/jobs", {"json": {"loss": "l1"}}, 422, "loss"),
    (
        "job-unknown-dataset",
        "POST",
        "/v1/jobs",
        {"json": {"dataset": {"name": "mnist"}}},
        422,
        "dataset/name",
    ),
    (
        "job-too-many-samples",
        "POST",
        "/v1/jobs",
        {"json": {"dataset": {"samples": 10**7}}},
        422,
        "dataset/samples",
    ),
    (
        "job-negative-noise",
        "POST",
        "/v1/jobs",
        {"json": {"dataset": {"noise": -1}}},
        422,
        "dataset/noise",
    ),
    (
        "job-data-and-dataset",
        "POST",
        "/v1/jobs",
        {"json": {"data": {"x": [[1, 2]], "y": [1]}, "dataset": {"name": "moons"}}},
        422,
        "data",
    ),
    (
        "job-ragged-x",
        "POST",
        "/v1/jobs",
        {"json": {"data": {"x": [[1, 2], [3]], "y": [1, -1]}}},
        422,
        "data/x/1",
    ),
    (
        "job-x-not-number",
        "POST",
        "/v1/jobs",
        {"json": {"data": {"x": [[1, "a"]], "y": [1]}}},
        422,
        "data/x/0/1",
    ),
    (
        "job-hinge-label-01",
        "POST",
        "/v1/jobs",
        {"json": {"data": {"x": [[1, 2], [3, 4]], "y": [0, 1]}}},
        422,
        "data/y/0",
    ),
    (
        "job-y-length",
        "POST",
        "/v1/jobs",
        {"json": {"data": {"x": [[1, 2], [3, 4]], "y": [1]}}},
        422,
        "data/y",
    ),
    (
        "job-negative-learning-rate",
        "POST",
        "/v1/jobs",
        {"json": {"optimizer": {"name": "sgd", "learning_rate": -1}}},
        422,
        "optimizer/learning_rate",
    ),
    (
        "job-unknown-optimizer",
        "POST",
        "/v1/jobs",
        {"json": {"optimizer": {"name": "rmsprop"}}},
        422,
        "optimizer/name",
    ),
    (
        "job-batch-over-samples",
        "POST",
        "/v1/jobs",
        {"json": {"batch_size": 1000}},
        422,
        "batch_size",
    ),
    ("job-unknown-engine", "POST", "/v1/jobs", {"json": {"engine": "gpu"}}, 422, "engine"),
    (
        "job-work-over-the-cap",
        "POST",
        "/v1/jobs",
        {"json": {"model": {"layers": [300, 300, 1]}, "steps": 1_000_000}},
        422,
        "",
    ),
    ("job-timeout-too-long", "POST", "/v1/jobs", {"json": {"timeout": 10**9}}, 422, "timeout"),
    ("job-timeout-word", "POST", "/v1/jobs", {"json": {"timeout": "1h"}}, 422, "timeout"),
    (
        "job-ce-with-one-output",
        "POST",
        "/v1/jobs",
        {"json": {"loss": "ce", "dataset": {"name": "blobs"}, "model": {"layers": [8, 1]}}},
        422,
        "model/layers/1",
    ),
    (
        "job-idempotency-key-too-long",
        "POST",
        "/v1/jobs",
        {"json": {}, "headers": {"Idempotency-Key": "k" * 300}},
        422,
        "Idempotency-Key",
    ),
    ("job-metadata-list", "POST", "/v1/jobs", {"json": {"metadata": ["a"]}}, 422, "metadata"),
    (
        "job-metadata-number",
        "POST",
        "/v1/jobs",
        {"json": {"metadata": {"team": 7}}},
        422,
        "metadata/team",
    ),
    (
        "job-metadata-value-513",
        "POST",
        "/v1/jobs",
        {"json": {"metadata": {"team": "x" * 513}}},
        422,
        "metadata/team",
    ),
    (
        "job-metadata-key-65",
        "POST",
        "/v1/jobs",
        {"json": {"metadata": {"k" * 65: "v"}}},
        422,
        "metadata/" + "k" * 65,
    ),
    (
        "job-metadata-17-pairs",
        "POST",
        "/v1/jobs",
        {"json": {"metadata": {f"k{i}": "v" for i in range(17)}}},
        422,
        "metadata",
    ),
    (
        "jobs-metadata-filter-key-65",
        "GET",
        "/v1/jobs?metadata." + "k" * 65 + "=v",
        {},
        422,
        "metadata." + "k" * 65,
    ),
    ("jobs-limit-zero", "GET", "/v1/jobs?limit=0", {}, 422, "limit"),
    ("jobs-limit-huge", "GET", "/v1/jobs?limit=100000", {}, 422, "limit"),
    ("jobs-limit-word", "GET", "/v1/jobs?limit=ten", {}, 422, "limit"),
    ("jobs-bad-status", "GET", "/v1/jobs?status=done", {}, 422, "status"),
    ("jobs-bad-cursor", "GET", "/v1/jobs?cursor=bm90LWEtY3Vyc29y", {}, 422, "cursor"),
    ("jobs-put", "PUT", "/v1/jobs", {"json": {}}, 405, None),
    ("job-get-unknown", "GET", f"/v1/jobs/{ID}", {}, 404, None),
    ("job-get-malformed-id", "GET", "/v1/jobs/..%2F..%2Fetc", {}, 404, None),
    ("history-unknown", "GET", f"/v1/jobs/{ID}/history", {}, 404, None),
    ("history-since-negative", "GET", "/v1/jobs/{job}/history?since=-1", {}, 422, "since"),
    ("history-since-word", "GET", "/v1/jobs/{job}/history?since=x", {}, 422, "since"),
    ("history-limit-zero", "GET", "/v1/jobs/{job}/history?limit=0", {}, 422, "limit"),
    ("history-limit-huge", "GET", "/v1/jobs/{job}/history?limit=100001", {}, 422, "limit"),
    ("history-limit-word", "GET", "/v1/jobs/{job}/history?limit=all", {}, 422, "limit"),
    ("data-unknown", "GET", f"/v1/jobs/{ID}/data", {}, 404, None),
    ("data-post", "POST", "/v1/jobs/{job}/data", {"json": {}}, 405, None),
    ("job-delete-unknown", "DELETE", f"/v1/jobs/{ID}", {}, 404, None),
    ("job-delete-malformed-id", "DELETE", "/v1/jobs/not-an-id", {}, 404, None),
    ("cancel-unknown", "POST", f"/v1/jobs/{ID}/cancel", {}, 404, None),
    ("cancel-get", "GET", "/v1/jobs/{job}/cancel", {}, 405, None),
    ("model-unknown", "GET", f"/v1/models/{ID}", {}, 404, None),
    ("model-delete-unknown", "DELETE", f"/v1/models/{ID}", {}, 404, None),
    (
        "predict-unknown-model",
        "POST",
        f"/v1/models/{ID}/predict",
        {"json": {"x": [[1, 2]]}},
        404,
        None,
    ),
    ("predict-no-x", "POST", "/v1/models/{model}/predict", {"json": {}}, 422, "x"),
    ("predict-x-not-list", "POST", "/v1/models/{model}/predict", {"json": {"x": 3}}, 422, "x"),
    ("predict-empty-x", "POST", "/v1/models/{model}/predict", {"json": {"x": []}}, 422, "x"),
    (
        "predict-wrong-width",
        "POST",
        "/v1/models/{model}/predict",
        {"json": {"x": [[1, 2], [1, 2, 3]]}},
        422,
        "x/1",
    ),
    (
        "predict-not-number",
        "POST",
        "/v1/models/{model}/predict",
        {"json": {"x": [["a", 2]]}},
        422,
        "x/0/0",
    ),
    (
        "predict-text",
        "POST",
        "/v1/models/{model}/predict",
        {"data": "x", "content_type": "text/plain"},
        415,
        None,
    ),
    ("unknown-path", "GET", "/v2/graphs", {}, 404, None),
]


def raw_json(text):
    return {"data": text, "json_type": True}


DEEP = "[" * 100_000 + "]" * 100_000
INPUT_A = '{"id": "a", "op": "input", "value": 1}'
# Hostile JSON (contract section 6): each a 400 problem naming the place, never a 5xx.
HOSTILE_JSON = [
    ("graph-nested-100000-deep", "/v1/graphs", raw_json(f'{{"nodes": {DEEP}}}'), ""),
    ("job-nested-100000-deep", "/v1/jobs", raw_json(f'{{"data": {{"x": {DEEP}}}}}'), ""),
    ("predict-nested-100000-deep", "/v1/models/{model}/predict", raw_json(f'{{"x": {DEEP}}}'), ""),
    (
        "graph-nested-65-deep",  # one level over MAX_JSON_DEPTH: the place is named
        "/v1/graphs",
        raw_json('{"nodes": ' + "[" * 64 + "]" * 64 + "}"),
        "nodes" + "/0" * 63,
    ),
    (
        "job-nested-65-deep",
        "/v1/jobs",
        raw_json('{"data": {"x": ' + "[" * 63 + "]" * 63 + "}}"),
        "data/x" + "/0" * 62,
    ),
    (
        "graph-5000-digit-integer",
        "/v1/graphs",
        raw_json('{"nodes": [{"id": "a", "op": "input", "value": 1' + "0" * 5000 + "}]}"),
        "nodes/0/value",
    ),
    ("job-5000-digit-integer", "/v1/jobs", raw_json('{"steps": 1' + "0" * 5000 + "}"), "steps"),
    (
        "predict-5000-digit-integer",
        "/v1/models/{model}/predict",
        raw_json('{"x": [[1, 1' + "0" * 5000 + "]]}"),
        "x/0/1",
    ),
    (
        "graph-5000-digit-fraction",
        "/v1/graphs",
        raw_json('{"nodes": [{"id": "a", "op": "input", "value": 0.' + "1" * 5000 + "}]}"),
        "nodes/0/value",
    ),
    (
        "graph-duplicate-key-top-level",
        "/v1/graphs",
        raw_json(f'{{"nodes": [{INPUT_A}], "nodes": [{INPUT_A}]}}'),
        "nodes",
    ),
    (
        "graph-duplicate-key-nested",
        "/v1/graphs",
        raw_json('{"nodes": [{"id": "a", "op": "input", "id": "b", "value": 1}]}'),
        "nodes/0/id",
    ),
    ("job-duplicate-key-top-level", "/v1/jobs", raw_json('{"steps": 5, "steps": 6}'), "steps"),
    (
        "job-duplicate-key-nested",
        "/v1/jobs",
        raw_json('{"model": {"layers": [4, 1], "layers": [8, 1]}}'),
        "model/layers",
    ),
    (
        "predict-duplicate-key",
        "/v1/models/{model}/predict",
        raw_json('{"x": [[1, 2]], "x": [[3, 4]]}'),
        "x",
    ),
]
BAD_INPUTS += [
    (name, "POST", path, kwargs, 400, where) for name, path, kwargs, where in HOSTILE_JSON
]


def check_problem(status, content_type, body, expected_status, where):
    """A clear problem: its status, the problem+json type, a title and a detail, and the
    offending field or node named."""
    assert status == expected_status, body
    assert content_type.startswith("application/problem+json")
    assert body["status"] == expected_status
    assert body["title"] and body["detail"] and body["type"]
    if where is not None and where.startswith("node:"):
        assert body["node"] == where[len("node:") :]
        assert where[len("node:") :] in body["detail"]
    elif where is not None:
        assert where in [e["path"] for e in body["errors"]], body["errors"]
        assert all(e["message"] for e in body["errors"])


def children(pid):
    """Command lines of the processes whose parent is pid (none once pid has exited)."""
    found = {}
    try:
        kids = psutil.Process(pid).children()
    except psutil.NoSuchProcess:
        return found
    for kid in kids:
        try:
            found[kid.pid] = " ".join(kid.cmdline())
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found


def descendants(pid):
    """pid's children, their children, and so on."""
    return [kid.pid for kid in psutil.Process(pid).children(recursive=True)]


def exited(pid):
    """Has pid exited (gone, or a zombie its parent has not reaped yet)?"""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
