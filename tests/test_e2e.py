"""End to end: the real API under gunicorn and real rq worker processes, over HTTP."""

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import requests

from engine.data import make_moons
from service.stack import redis_server
from service.store.queue import connect

from .conftest import E2E_DB
from .service_helpers import (
    BAD_INPUTS,
    EXAMPLES,
    MICROGRAD_FIGURES,
    MICROGRAD_GRAPH,
    check_problem,
    children,
    descendants,
    exited,
    forward,
    long_spec,
    small_spec,
    wait_until,
)

pytestmark = pytest.mark.e2e
TERMINAL = ("succeeded", "failed", "cancelled")


def finished(base, job_id, timeout=60):
    return wait_until(
        lambda: (
            (job := requests.get(f"{base}/v1/jobs/{job_id}").json())["status"] in TERMINAL and job
        ),
        timeout=timeout,
    )


def submit(base, spec, **kwargs):
    response = requests.post(f"{base}/v1/jobs", json=spec, **kwargs)
    assert response.status_code == 202, response.text
    return response.json()["id"]


@pytest.fixture(scope="module")
def trained(stack):
    """A small job run to success by the real workers."""
    return finished(stack, submit(stack, small_spec()))


def test_readme_graph(stack):
    response = requests.post(f"{stack}/v1/graphs", json=MICROGRAD_GRAPH)
    assert response.status_code == 201
    assert response.headers["Content-Type"] == "application/json"
    result = response.json()["result"]
    assert result["value"] == pytest.approx(MICROGRAD_FIGURES["value"], abs=1e-4)
    assert result["grads"]["a"] == pytest.approx(MICROGRAD_FIGURES["a"], abs=1e-4)
    assert result["grads"]["b"] == pytest.approx(MICROGRAD_FIGURES["b"], abs=1e-4)
    assert requests.get(stack + response.headers["Location"]).json() == response.json()


def test_micrograd_demo_job(stack):
    job = finished(stack, submit(stack, {}))
    assert job["status"] == "succeeded", job["error"]
    assert job["spec"]["engine"] == "compiled" and job["spec"]["steps"] == 100
    history = requests.get(f"{stack}/v1/jobs/{job['id']}/history").json()
    assert history["step"] == list(range(100)) and len(history["loss"]) == 100
    assert history["accuracy"][-1] >= 0.97 and job["metrics"]["accuracy"] >= 0.97
    assert history["loss"][-1] < history["loss"][0]
    model = requests.get(f"{stack}/v1/models/{job['model_id']}").json()
    assert model["model"] == {"inputs": 2, "layers": [16, 16, 1], "activation": "relu"}
    assert len(model["parameters"]) == 337  # micrograd's demo network
    x, labels = make_moons(100, 0.1, 0)
    y = requests.post(f"{stack}/v1/models/{model['id']}/predict", json={"x": x}).json()["y"]
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
def test_every_loss_trains_and_predicts(stack, loss):
    job = finished(stack, submit(stack, LOSS_SPECS[loss]))
    assert job["status"] == "succeeded", job["error"]
    history = requests.get(f"{stack}/v1/jobs/{job['id']}/history").json()
    assert history["step"] == list(range(5))
    assert all(math.isfinite(v) for v in history["loss"])
    assert (history["accuracy"][-1] is None) == (loss == "mse")
    model = requests.get(f"{stack}/v1/models/{job['model_id']}").json()
    x = [[0.5, 0.5], [-1.0, 2.0]]
    predicted = requests.post(f"{stack}/v1/models/{model['id']}/predict", json={"x": x}).json()
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


def test_cancel_of_a_queued_and_of_running_jobs(stack):
    running = [submit(stack, long_spec()) for _ in range(2)]  # both workers busy
    for job_id in running:
        wait_until(
            lambda job_id=job_id: requests.get(f"{stack}/v1/jobs/{job_id}/history").json()["step"]
        )  # running and writing history
    queued = submit(stack, small_spec())  # no worker is free to start it
    assert requests.get(f"{stack}/v1/jobs/{queued}").json()["status"] == "queued"
    response = requests.post(f"{stack}/v1/jobs/{queued}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"

    lengths = {}
    for job_id in running:
        response = requests.post(f"{stack}/v1/jobs/{job_id}/cancel")
        assert response.status_code == 200 and response.json()["status"] == "cancelled"
        lengths[job_id] = len(requests.get(f"{stack}/v1/jobs/{job_id}/history").json()["step"])
    # The workers stop at their next step: both free for a new job at once.
    after = finished(stack, submit(stack, small_spec()), timeout=20)
    assert after["status"] == "succeeded"
    for job_id in running:
        job = requests.get(f"{stack}/v1/jobs/{job_id}").json()
        assert job["status"] == "cancelled" and job["model_id"] is None
        history = requests.get(f"{stack}/v1/jobs/{job_id}/history").json()["step"]
        assert len(history) == lengths[job_id] > 0  # nothing written after the cancel
        assert history == list(range(len(history)))
    job = requests.get(f"{stack}/v1/jobs/{queued}").json()
    assert job["status"] == "cancelled" and job["started_at"] is None
    assert requests.get(f"{stack}/v1/jobs/{queued}/history").json()["step"] == []
    again = requests.post(f"{stack}/v1/jobs/{queued}/cancel")
    check_problem(again.status_code, again.headers["Content-Type"], again.json(), 409, None)


def test_delete_of_running_jobs_stops_their_workers_and_leaves_nothing(stack, redis_port):
    running = [submit(stack, long_spec()) for _ in range(2)]  # both workers busy
    for job_id in running:
        wait_until(
            lambda job_id=job_id: requests.get(f"{stack}/v1/jobs/{job_id}/history").json()["step"]
        )  # running and writing history
    for job_id in running:
        assert requests.delete(f"{stack}/v1/jobs/{job_id}").status_code == 204
    # Both workers stop at their next step and take new work; their runs wrote nothing more.
    assert finished(stack, submit(stack, small_spec()), timeout=20)["status"] == "succeeded"
    store = connect(redis_server.url(redis_port, E2E_DB))
    time.sleep(0.5)  # a flush interval and more: a late write would show by now
    for job_id in running:
        assert list(store.scan_iter(f"gradserve:*{job_id}*")) == []
        response = requests.get(f"{stack}/v1/jobs/{job_id}")
        check_problem(
            response.status_code, response.headers["Content-Type"], response.json(), 404, None
        )
        assert requests.delete(f"{stack}/v1/jobs/{job_id}").status_code == 404


def test_diverging_job_fails_naming_the_step_and_keeps_its_history(stack):
    spec = small_spec(steps=50, optimizer={"name": "sgd", "learning_rate": 1e8})
    job = finished(stack, submit(stack, spec))
    assert job["status"] == "failed" and job["model_id"] is None
    step = job["error"]["step"]
    assert f"step {step}" in job["error"]["detail"] and job["error"]["title"]
    history = requests.get(f"{stack}/v1/jobs/{job['id']}/history").json()
    assert history["step"] == list(range(step))


def test_pagination_over_http(stack):
    made = [submit(stack, small_spec()) for _ in range(5)]
    seen, cursor = [], None
    while len(seen) < 5:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = requests.get(f"{stack}/v1/jobs", params=params).json()
        seen += [job["id"] for job in page["items"]]
        cursor = page["next_cursor"]
    assert seen[:5] == made[::-1]


def test_idempotency_over_http(stack):
    key = {"Idempotency-Key": f"e2e-{time.time_ns()}"}
    first = submit(stack, small_spec(steps=2), headers=key)
    assert submit(stack, small_spec(steps=2), headers=key) == first
    other = requests.post(f"{stack}/v1/jobs", json=small_spec(steps=3), headers=key)
    check_problem(other.status_code, other.headers["Content-Type"], other.json(), 422, None)


@pytest.mark.parametrize(
    "name, method, path, kwargs, status, where", BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS]
)
def test_bad_input_over_http_is_a_clear_problem(
    stack, trained, name, method, path, kwargs, status, where
):
    path = path.format(job=trained["id"], model=trained["model_id"])
    kwargs = dict(kwargs)
    headers = kwargs.pop("headers", {})
    if kwargs.pop("json_type", False):
        headers["Content-Type"] = "application/json"
    if "content_type" in kwargs:
        headers["Content-Type"] = kwargs.pop("content_type")
    response = requests.request(method, stack + path, headers=headers, **kwargs)
    check_problem(
        response.status_code, response.headers["Content-Type"], response.json(), status, where
    )


def test_a_100_mb_body_is_refused_with_413(stack):
    host, port = stack.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(
            b"POST /v1/graphs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
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


def test_large_graph_is_queued_and_evaluated_by_a_worker(stack):
    nodes = [{"id": "n0", "op": "input", "value": 0.5}]
    nodes += [{"id": f"n{i}", "op": "sigmoid", "inputs": [f"n{i - 1}"]} for i in range(1, 25_000)]
    response = requests.post(f"{stack}/v1/graphs", json={"nodes": nodes})
    assert response.status_code == 202
    location = stack + response.headers["Location"]
    done = wait_until(
        lambda: (g := requests.get(location).json())["status"] in ("succeeded", "failed") and g
    )
    assert done["status"] == "succeeded"
    x = 0.5
    for _ in range(24_999):
        x = 1 / (1 + math.exp(-x))
    assert done["result"]["value"] == pytest.approx(x)
    assert len(done["result"]["grads"]) == 25_000


def test_openapi_and_health_over_http(stack):
    assert requests.get(f"{stack}/healthz").json() == {"status": "ok"}
    assert requests.get(f"{stack}/readyz").json() == {"status": "ready"}
    assert "/v1/jobs/{job_id}/cancel" in requests.get(f"{stack}/openapi.json").json()["paths"]


CLIENTS = [("python", [sys.executable, str(EXAMPLES / "client.py")])]
if shutil.which("node"):  # the Node.js client runs wherever node is installed
    CLIENTS.append(("node", ["node", str(EXAMPLES / "client.mjs")]))


@pytest.mark.parametrize("command", [c[1] for c in CLIENTS], ids=[c[0] for c in CLIENTS])
def test_example_client(stack, command):
    run = subprocess.run([*command, stack], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    graph, job = (json.loads(line) for line in run.stdout.splitlines())
    assert graph["g"] == pytest.approx(MICROGRAD_FIGURES["value"], abs=1e-4)
    assert graph["dg/db"] == pytest.approx(MICROGRAD_FIGURES["b"], abs=1e-4)
    assert job["status"] == "succeeded" and job["steps"] == 100 and job["accuracy"] >= 0.97
    assert len(job["y"]) == 2


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
        process = subprocess.Popen(
            [sys.executable, "-m", "service.stack"],
            env={**env, "WORKERS": str(workers)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: _answers(base), timeout=30)
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
    job_id = submit(base, small_spec())  # queued: no worker yet
    stop(first)
    assert (tmp_path / "redis").is_dir()

    second = run(workers=1)
    try:
        assert finished(base, job_id)["status"] == "succeeded"  # picked up where it was
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
        assert finished(base, submit(base, small_spec()))["status"] == "succeeded"
    finally:
        stop(second)


def _answers(base):
    try:
        return requests.get(f"{base}/readyz", timeout=1).status_code == 200
    except requests.RequestException:  # not listening yet, or too busy starting to answer
        return False


def test_worker_healthcheck_sees_this_hosts_workers(stack, redis_port):
    def check(db):
        env = {**os.environ, "REDIS_URL": redis_server.url(redis_port, db)}
        command = [sys.executable, "-m", "service.worker", "--check"]
        return subprocess.run(command, env=env, timeout=30).returncode

    assert check(E2E_DB) == 0  # the stack's two workers
    assert check(E2E_DB + 1) == 1  # a database no worker serves
