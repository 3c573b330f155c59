"""End to end: the real API under gunicorn and real rq worker processes, over HTTP."""

import json
import math
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time

import numpy as np
import pytest
import requests

from engine.data import make_moons
from service import settings
from service.stack import redis_server
from service.store import ApiKeys
from service.store.queue import connect

from .conftest import E2E_DB
from .service_helpers import (
    BAD_INPUTS,
    EXAMPLES,
    MICROGRAD_FIGURES,
    MICROGRAD_GRAPH,
    ApiSession,
    check_problem,
    children,
    descendants,
    exited,
    forward,
    long_spec,
    small_spec,
    wait_until,
)
from .stacks import ready

pytestmark = pytest.mark.e2e
TERMINAL = ("succeeded", "failed", "cancelled")


def finished(api, job_id, timeout=60):
    return wait_until(
        lambda: (job := api.get(f"/v1/jobs/{job_id}").json())["status"] in TERMINAL and job,
        timeout=timeout,
    )


def submit(api, spec, **kwargs):
    response = api.post("/v1/jobs", json=spec, **kwargs)
    assert response.status_code == 202, response.text
    return response.json()["id"]


@pytest.fixture(scope="module")
def trained(api):
    """A small job run to success by the real workers."""
    return finished(api, submit(api, small_spec()))


def test_readme_graph(api):
    response = api.post("/v1/graphs", json=MICROGRAD_GRAPH)
    assert response.status_code == 201
    assert response.headers["Content-Type"] == "application/json"
    result = response.json()["result"]
    assert result["value"] == pytest.approx(MICROGRAD_FIGURES["value"], abs=1e-4)
    assert result["grads"]["a"] == pytest.approx(MICROGRAD_FIGURES["a"], abs=1e-4)
    assert result["grads"]["b"] == pytest.approx(MICROGRAD_FIGURES["b"], abs=1e-4)
    assert api.get(response.headers["Location"]).json() == response.json()


def test_micrograd_demo_job(api):
    job = finished(api, submit(api, {}))
    assert job["status"] == "succeeded", job["error"]
    assert job["spec"]["engine"] == "compiled" and job["spec"]["steps"] == 100
    history = api.get(f"/v1/jobs/{job['id']}/history").json()
    assert history["step"] == list(range(100)) and len(history["loss"]) == 100
    assert history["accuracy"][-1] >= 0.97 and job["metrics"]["accuracy"] >= 0.97
    assert history["loss"][-1] < history["loss"][0]
    model = api.get(f"/v1/models/{job['model_id']}").json()
    assert model["model"] == {"inputs": 2, "layers": [16, 16, 1], "activation": "relu"}
    assert len(model["parameters"]) == 337  # micrograd's demo network
    x, labels = make_moons(100, 0.1, 0)
    y = api.post(f"/v1/models/{model['id']}/predict", json={"x": x}).json()["y"]
    assert y == pytest.approx(forward(model, x)[:, 0].tolist(), rel=1e-9, abs=1e-12)
    accuracy = sum((out > 0) == (label == 1) for out, label in zip(y, labels, strict=True)) / 100
    assert accuracy >= 0.97


LOSS_SPECS = {
    "hinge": small_spec(loss="hinge"),
    "mse": small_spec(loss="mse"),
    "bce": small_spec(loss="bce"),
    "ce": small_spec(
        loss="ce",
        dataset={"name": "blobs", "samples": 30, "classes": 3},
        model={"inputs": 2, "layers": [8, 3]},
    ),
}


@pytest.mark.parametrize("loss", LOSS_SPECS)
def test_every_loss_trains_and_predicts(api, loss):
    job = finished(api, submit(api, LOSS_SPECS[loss]))
    assert job["status"] == "succeeded", job["error"]
    history = api.get(f"/v1/jobs/{job['id']}/history").json()
    assert history["step"] == list(range(5))
    assert all(math.isfinite(v) for v in history["loss"])
    assert (history["accuracy"][-1] is None) == (loss == "mse")
    model = api.get(f"/v1/models/{job['model_id']}").json()
    x = [[0.5, 0.5], [-1.0, 2.0]]
    predicted = api.post(f"/v1/models/{model['id']}/predict", json={"x": x}).json()
    expected = forward(model, x)
    if loss == "ce":
        assert np.allclose(predicted["y"], expected, rtol=1e-9, atol=0)
        assert [sum(p) for p in predicted["probabilities"]] == pytest.approx([1.0, 1.0])
        assert [max(range(3), key=row.__getitem__) for row in predicted["probabilities"]] == [
            max(range(3), key=row.__getitem__) for row in predicted["y"]
        ]
    else:
        assert predicted["y"] == pytest.approx(expected[:, 0].tolist(), rel=1e-9)
    if loss == "bce":
        sigmoid = [1 / (1 + math.exp(-z)) for z in predicted["y"]]
        assert predicted["probabilities"] == pytest.approx(sigmoid)


def test_cancel_of_a_queued_and_of_running_jobs(api):
    running = [submit(api, long_spec()) for _ in range(2)]  # both workers busy
    for job_id in running:
        wait_until(
            lambda job_id=job_id: api.get(f"/v1/jobs/{job_id}/history").json()["step"]
        )  # running and writing history
    queued = submit(api, small_spec())  # no worker is free to start it
    assert api.get(f"/v1/jobs/{queued}").json()["status"] == "queued"
    response = api.post(f"/v1/jobs/{queued}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"

    lengths = {}
    for job_id in running:
        response = api.post(f"/v1/jobs/{job_id}/cancel")
        assert response.status_code == 200 and response.json()["status"] == "cancelled"
        lengths[job_id] = len(api.get(f"/v1/jobs/{job_id}/history").json()["step"])
    # The workers stop at their next step: both free for a new job at once.
    after = finished(api, submit(api, small_spec()), timeout=20)
    assert after["status"] == "succeeded"
    for job_id in running:
        job = api.get(f"/v1/jobs/{job_id}").json()
        assert job["status"] == "cancelled" and job["model_id"] is None
        history = api.get(f"/v1/jobs/{job_id}/history").json()["step"]
        assert len(history) == lengths[job_id] > 0  # nothing written after the cancel
        assert history == list(range(len(history)))
    job = api.get(f"/v1/jobs/{queued}").json()
    assert job["status"] == "cancelled" and job["started_at"] is None
    assert api.get(f"/v1/jobs/{queued}/history").json()["step"] == []
    again = api.post(f"/v1/jobs/{queued}/cancel")
    check_problem(again.status_code, again.headers["Content-Type"], again.json(), 409, None)


def test_delete_of_running_jobs_stops_their_workers_and_leaves_nothing(api, redis_port):
    running = [submit(api, long_spec()) for _ in range(2)]  # both workers busy
    for job_id in running:
        wait_until(
            lambda job_id=job_id: api.get(f"/v1/jobs/{job_id}/history").json()["step"]
        )  # running and writing history
    for job_id in running:
        assert api.delete(f"/v1/jobs/{job_id}").status_code == 204
    # Both workers stop at their next step and take new work; their runs wrote nothing more.
    assert finished(api, submit(api, small_spec()), timeout=20)["status"] == "succeeded"
    store = connect(redis_server.url(redis_port, E2E_DB))
    time.sleep(0.5)  # a flush interval and more: a late write would show by now
    listed = {job["id"] for job in api.get("/v1/jobs", params={"limit": 100}).json()["items"]}
    for job_id in running:
        assert list(store.scan_iter(f"gradserve:*{job_id}*")) == []
        assert job_id not in listed  # gone from the tenant's list too
        response = api.get(f"/v1/jobs/{job_id}")
        check_problem(
            response.status_code, response.headers["Content-Type"], response.json(), 404, None
        )
        assert api.delete(f"/v1/jobs/{job_id}").status_code == 404


def test_diverging_job_fails_naming_the_step_and_keeps_its_history(api):
    spec = small_spec(steps=50, optimizer={"name": "sgd", "learning_rate": 1e8})
    job = finished(api, submit(api, spec))
    assert job["status"] == "failed" and job["model_id"] is None
    step = job["error"]["step"]
    assert f"step {step}" in job["error"]["detail"] and job["error"]["title"]
    history = api.get(f"/v1/jobs/{job['id']}/history").json()
    assert history["step"] == list(range(step))


def test_pagination_over_http(api):
    made = [submit(api, small_spec()) for _ in range(5)]
    seen, cursor = [], None
    while len(seen) < 5:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.get("/v1/jobs", params=params).json()
        seen += [job["id"] for job in page["items"]]
        cursor = page["next_cursor"]
    assert seen[:5] == made[::-1]


def test_idempotency_over_http(api):
    key = {"Idempotency-Key": f"e2e-{time.time_ns()}"}
    first = submit(api, small_spec(steps=2), headers=key)
    assert submit(api, small_spec(steps=2), headers=key) == first
    other = api.post("/v1/jobs", json=small_spec(steps=3), headers=key)
    check_problem(other.status_code, other.headers["Content-Type"], other.json(), 422, None)


@pytest.mark.parametrize(
    "name, method, path, kwargs, status, where", BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS]
)
def test_bad_input_over_http_is_a_clear_problem(
    api, trained, name, method, path, kwargs, status, where
):
    path = path.format(job=trained["id"], model=trained["model_id"])
    kwargs = dict(kwargs)
    headers = kwargs.pop("headers", {})
    if kwargs.pop("json_type", False):
        headers["Content-Type"] = "application/json"
    if "content_type" in kwargs:
        headers["Content-Type"] = kwargs.pop("content_type")
    response = api.request(method, path, headers=headers, **kwargs)
    check_problem(
        response.status_code, response.headers["Content-Type"], response.json(), status, where
    )


def test_a_100_mb_body_is_refused_with_413(stack, api):
    host, port = stack.removeprefix("http://").split(":")
    authorization = api.headers["Authorization"].encode()
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(
            b"POST /v1/graphs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: " + authorization + b"\r\n"
            b"Content-Length: 100000000\r\n\r\n" + b"[" * 65536
        )
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert b"application/problem+json" in head
    assert json.loads(body)["status"] == 413


def test_large_graph_is_queued_and_evaluated_by_a_worker(api):
    nodes = [{"id": "n0", "op": "input", "value": 0.5}]
    nodes += [{"id": f"n{i}", "op": "sigmoid", "inputs": [f"n{i - 1}"]} for i in range(1, 25_000)]
    response = api.post("/v1/graphs", json={"nodes": nodes})
    assert response.status_code == 202
    location = response.headers["Location"]
    done = wait_until(
        lambda: (g := api.get(location).json())["status"] in ("succeeded", "failed") and g
    )
    assert done["status"] == "succeeded"
    x = 0.5
    for _ in range(24_999):
        x = 1 / (1 + math.exp(-x))
    assert done["result"]["value"] == pytest.approx(x)
    assert len(done["result"]["grads"]) == 25_000


def test_openapi_and_health_over_http_need_no_key(stack):
    assert requests.get(f"{stack}/healthz").json() == {"status": "ok"}
    assert requests.get(f"{stack}/readyz").json() == {"status": "ready"}
    assert "/v1/jobs/{job_id}/cancel" in requests.get(f"{stack}/openapi.json").json()["paths"]


CLIENTS = [("python", [sys.executable, str(EXAMPLES / "client.py")])]
if shutil.which("node"):  # the Node.js client runs wherever node is installed
    CLIENTS.append(("node", ["node", str(EXAMPLES / "client.mjs")]))


@pytest.mark.parametrize("command", [c[1] for c in CLIENTS], ids=[c[0] for c in CLIENTS])
def test_example_client(stack, api, command):
    key = api.headers["Authorization"].removeprefix("Bearer ")
    env = {**os.environ, "GRADSERVE_API_KEY": key}
    run = subprocess.run([*command, stack], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    graph, job = (json.loads(line) for line in run.stdout.splitlines())
    assert graph["g"] == pytest.approx(MICROGRAD_FIGURES["value"], abs=1e-4)
    assert graph["dg/db"] == pytest.approx(MICROGRAD_FIGURES["b"], abs=1e-4)
    assert job["status"] == "succeeded" and job["steps"] == 100 and job["accuracy"] >= 0.97
    assert len(job["y"]) == 2
    if command[0] == "node":  # followed on its events stream: the last step's progress line
        assert "step 100/100 loss" in run.stderr


def test_make_run_supervises_and_picks_jobs_up_again(tmp_path):
    port, redis_port = redis_server.free_port(), redis_server.free_port()
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(
        PORT=str(port),
        REDIS_PORT=str(redis_port),
        GRADSERVE_DATA_DIR=str(tmp_path),
        WEB_CONCURRENCY="1",
        GUNICORN_ACCESS_LOG="",
    )
    base = f"http://127.0.0.1:{port}"

    def run(workers):
        with open(tmp_path / "run.log", "a") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "service.stack"],
                env={**env, "WORKERS": str(workers)},
                stdout=log,
                stderr=log,
            )
        wait_until(lambda: ready(base), timeout=30)
        return process

    def stop(process):
        started = descendants(process.pid)  # Redis, gunicorn and its workers, rq workers
        assert len(started) >= 3
        process.send_signal(signal.SIGINT)  # Ctrl-C
        assert process.wait(30) == 0
        assert all(exited(pid) for pid in started)
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{base}/healthz", timeout=2)

    first = run(workers=0)
    key_file = tmp_path / "api-key"  # make run's key of tenant `local`, for its user alone
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    api = ApiSession(base, key)
    job_id = submit(api, small_spec())  # queued: no worker yet
    stop(first)
    assert (tmp_path / "redis").is_dir()

    second = run(workers=1)
    try:
        assert key_file.read_text().strip() == key  # it still works: kept
        log = (tmp_path / "run.log").read_text()
        assert str(key_file) in log and key not in log
        assert finished(api, job_id)["status"] == "succeeded"  # picked up where it was
        (supervisor,) = children(second.pid)  # under the process started, which only waits
        workers = {pid: cmd for pid, cmd in children(supervisor).items() if "worker" in cmd}
        assert len(workers) == 1
        os.kill(next(iter(workers)), signal.SIGKILL)
        replaced = wait_until(
            lambda: (
                {p for p, cmd in children(supervisor).items() if "worker" in cmd} - set(workers)
            ),
            timeout=10,
        )
        assert len(replaced) == 1
        assert finished(api, submit(api, small_spec()))["status"] == "succeeded"
    finally:
        stop(second)


def test_worker_healthcheck_sees_this_hosts_workers(stack, redis_port):
    def check(db):
        env = {**os.environ, "REDIS_URL": redis_server.url(redis_port, db)}
        command = [sys.executable, "-m", "service.worker", "--check"]
        return subprocess.run(command, env=env, timeout=30).returncode

    assert check(E2E_DB) == 0  # the stack's two workers
    assert check(E2E_DB + 1) == 1  # a database no worker serves


# -- access over HTTP ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def other(stack, redis_port):
    """A session of another tenant on the same stack."""
    keys = ApiKeys(connect(redis_server.url(redis_port, E2E_DB)))
    with ApiSession(stack, keys.create("e2e-other")[1]) as session:
        yield session


@pytest.fixture(scope="module")
def graph(api):
    return api.post("/v1/graphs", json=MICROGRAD_GRAPH).json()["id"]


OWN_PATHS = [
    ("GET", "/v1/jobs/{job}"),
    ("GET", "/v1/jobs/{job}/history"),
    ("POST", "/v1/jobs/{job}/cancel"),
    ("GET", "/v1/models/{model}"),
    ("POST", "/v1/models/{model}/predict"),
    ("GET", "/v1/graphs/{graph}"),
]


@pytest.mark.parametrize("method, path", OWN_PATHS, ids=[f"{m} {p}" for m, p in OWN_PATHS])
def test_another_tenants_ids_are_404_over_http(api, other, trained, graph, method, path):
    ids = {"job": trained["id"], "model": trained["model_id"], "graph": graph}
    body = {"x": [[0.0, 0.0]]} if path.endswith("predict") else None
    theirs = other.request(method, path.format(**ids), json=body, timeout=10)
    check_problem(theirs.status_code, theirs.headers["Content-Type"], theirs.json(), 404, None)
    assert api.request(method, path.format(**ids), json=body).status_code in (200, 409)


def test_each_tenant_lists_its_own_jobs_over_http(api, other, trained):
    assert other.get("/v1/jobs").json()["items"] == []
    assert trained["id"] in [job["id"] for job in api.get("/v1/jobs?limit=100").json()["items"]]


def raw_get(base, path, header_lines):
    """A GET with headers as raw bytes (requests refuses what a hostile client may send)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(
            b"GET "
            + path.encode()
            + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            + b"".join(line + b"\r\n" for line in header_lines)
            + b"\r\n"
        )
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    return head.decode("latin-1"), body


REFUSED = {
    "no-key": [],
    "bearer-alone": [b"Authorization: Bearer"],
    "basic": [b"Authorization: Basic dXNlcjpwYXNz"],
    "two-spaces": [b"Authorization: Bearer  x"],
    "8-kB": [b"Authorization: Bearer " + b"a" * 8000],
    "non-ascii": [b"Authorization: Bearer gs_\xc3\xa9\xff"],
    "unknown": [b"Authorization: Bearer gs_000000000000_" + b"A" * 43],
}


@pytest.mark.parametrize("lines", REFUSED.values(), ids=REFUSED.keys())
def test_refusals_over_http_are_401_problems_with_a_challenge(stack, lines):
    head, body = raw_get(stack, "/v1/jobs", lines)
    assert head.startswith("HTTP/1.1 401"), head
    assert "application/problem+json" in head
    assert re.search(r"(?im)^WWW-Authenticate: Bearer realm=\"gradserve\"", head), head
    assert json.loads(body)["status"] == 401


def test_a_header_over_gunicorns_field_limit_is_refused_before_the_app(stack):
    """10 kB: gunicorn's limit_request_field_size (8190 bytes) answers before the app (431);
    the app's own answer to such a key (401) is tested in-process."""
    head, _ = raw_get(stack, "/v1/jobs", [b"Authorization: Bearer " + b"a" * 10_000])
    assert head.split(" ")[1] in ("401", "431"), head


def test_a_revoked_key_is_refused_over_http_within_key_cache_seconds(stack, redis_port):
    """Each API process remembers a valid key KEY_CACHE_SECONDS: once that has passed
    since the revoke, every one of them (WEB_CONCURRENCY=2) refuses it."""
    keys = ApiKeys(connect(redis_server.url(redis_port, E2E_DB)))
    record, key = keys.create("e2e-revoked")
    with ApiSession(stack, key) as session:
        for _ in range(4):  # both processes remember it
            assert session.get("/v1/jobs").status_code == 200
        keys.revoke(record.id)
        time.sleep(settings.KEY_CACHE_SECONDS + 0.1)
        for _ in range(4):
            assert session.get("/v1/jobs").status_code == 401


def gunicorn(env, **kwargs):
    command = [sys.executable, "-m", "gunicorn", "-c", "python:service.api.gunicorn_conf"]
    return subprocess.Popen(command, env=env, **kwargs)


def test_auth_off_refuses_to_bind_beyond_loopback(redis_port):
    env = {**os.environ, "GRADSERVE_AUTH": "off", "HOST": "0.0.0.0", "WEB_CONCURRENCY": "1"}
    env.update(PORT=str(redis_server.free_port()), REDIS_URL=redis_server.url(redis_port, E2E_DB))
    process = gunicorn(env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode != 0
    assert "GRADSERVE_AUTH=off" in stderr and "0.0.0.0" in stderr and "loopback" in stderr


def test_auth_off_on_loopback_serves_every_request_as_local(api, other, redis_port):
    port = redis_server.free_port()
    env = {**os.environ, "GRADSERVE_AUTH": "off", "HOST": "127.0.0.1", "WEB_CONCURRENCY": "1"}
    env.update(PORT=str(port), REDIS_URL=redis_server.url(redis_port, E2E_DB))
    env["GUNICORN_ACCESS_LOG"] = ""
    process = gunicorn(env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: ready(base), timeout=30)
        response = requests.post(f"{base}/v1/graphs", json=MICROGRAD_GRAPH, timeout=10)
        assert response.status_code == 201  # no key asked
        location = response.headers["Location"]
        assert api.get(location).status_code == 200  # tenant local's, as make run's key is
        assert other.get(location).status_code == 404
    finally:
        process.terminate()
        process.wait(30)
