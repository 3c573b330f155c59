"""The request path against hostile and heavy clients, on the real API under gunicorn (its
config: gevent workers) over loopback: slow headers and stalled bodies never starve it and
are cut off in bounded time, a chunked body over the limit is 413, a Redis that does not
answer is a quick 503 while the event loop goes on, and CPU-bound requests leave it free."""

import contextlib
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests

from bench.bench_request_path import Probes, SlowClients
from bench.bench_service import largest_graph
from service import settings
from service.api.gunicorn_conf import keepalive
from service.stack import redis_server

from .service_helpers import ID, check_problem, wait_until

pytestmark = pytest.mark.e2e
SLOW_CLIENTS = 50


@contextlib.contextmanager
def api_alone(redis_url, tmp_path, workers=1, **settings):
    """The API under gunicorn with its config (and `settings`), and nothing else: its base
    URL."""
    port = redis_server.free_port()
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "PORT": str(port),
        "WEB_CONCURRENCY": str(workers),
        "GUNICORN_ACCESS_LOG": "",
        "GRADSERVE_AUTH": "off",  # on loopback: tenant `local`, what matters here is the path
        "GRADSERVE_RATE_LIMIT": "",
        "GRADSERVE_RATE_LIMIT_SUBMIT": "",
        **{f"GRADSERVE_{name}": value for name, value in settings.items()},
    }
    command = [sys.executable, "-m", "gunicorn", "-c", "python:service.api.gunicorn_conf"]
    with open(tmp_path / "gunicorn.log", "w") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"

    def listening():
        try:
            return requests.get(f"{base}/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_until(listening, timeout=30, interval=0.1)
        yield base
    finally:
        server.terminate()
        server.wait(30)
    assert "MonkeyPatchWarning" not in (tmp_path / "gunicorn.log").read_text()


def key_of(api):
    return api.headers["Authorization"].removeprefix("Bearer ")


def test_slow_clients_never_starve_the_api_and_are_cut_off(stack, api):
    port = int(stack.rsplit(":", 1)[1])
    clients = SlowClients(port, SLOW_CLIENTS, key=key_of(api))
    clients.connect()
    trickle = threading.Thread(target=clients.run, daemon=True)
    trickle.start()
    probes = Probes(port, interval=0.2, timeout=5, key=key_of(api))
    try:
        probes.run(settings.REQUEST_READ_TIMEOUT + 3)  # until the slow ones are all cut off
    finally:
        clients.close()
        trickle.join(5)
    assert len(probes.results) >= 60
    slow = [(kind, round(t, 2)) for kind, t, ok in probes.results if not ok or t >= 1.0]
    assert slow == [], "probes that failed or took a second or more"
    # The server cut every slow client off: headers after `keepalive` (the request line and
    # headers must arrive within it), stalled bodies after REQUEST_READ_TIMEOUT with a 408.
    headers, bodies = clients.cut["header"], clients.cut["body"]
    assert len(headers) == len(bodies) == SLOW_CLIENTS
    assert all(keepalive - 1 <= t <= keepalive + 2 for t, _ in headers), headers
    assert {status for _, status in headers} == {"closed"}
    timeout = settings.REQUEST_READ_TIMEOUT
    assert all(timeout - 1 <= t <= timeout + 2 for t, _ in bodies), bodies
    assert {status for _, status in bodies} == {"408"}


def test_body_shorter_than_its_content_length_is_408_after_the_read_timeout(stack, api):
    host, port = stack.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        started = time.monotonic()
        conn.sendall(
            b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {key_of(api)}\r\n".encode()
            + b"Content-Length: 100\r\n\r\n{}"
        )
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
        waited = time.monotonic() - started
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408") and b"application/problem+json" in head
    assert json.loads(body)["status"] == 408
    assert settings.REQUEST_READ_TIMEOUT - 1 <= waited <= settings.REQUEST_READ_TIMEOUT + 7


def test_a_chunked_body_over_the_limit_is_413_not_a_cut_body(stack, api):
    headers = {"Content-Type": "application/json", "Authorization": api.headers["Authorization"]}

    def forty_mib():
        yield b'{"nodes": ['
        node = b'{"id": "n", "op": "input", "value": 1.0}, '
        for _ in range(40 * 2**20 // (len(node) * 1000)):
            yield node * 1000
        yield b'{"id": "n", "op": "input", "value": 1.0}]}'

    response = requests.post(
        f"{stack}/v1/graphs",
        data=forty_mib(),  # a generator: sent chunked, with no Content-Length
        headers=headers,
        timeout=60,
    )
    check_problem(
        response.status_code, response.headers["Content-Type"], response.json(), 413, None
    )
    assert str(settings.MAX_CONTENT_LENGTH) in response.json()["detail"]
    small = requests.post(
        f"{stack}/v1/graphs",
        data=iter([b'{"nodes": [{"id": "a", "op": "input", "value": 2}]}']),
        headers=headers,
        timeout=10,
    )
    assert small.status_code == 201 and small.json()["result"]["grads"] == {"a": 1.0}


@pytest.fixture
def silent_redis():
    """A listener that accepts connections and never answers: a hung Redis."""
    listener = socket.create_server(("127.0.0.1", 0))
    held, stop = [], threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    listener.close()


def test_redis_timeouts_hold_under_gevent_and_waiting_never_blocks_the_loop(silent_redis, tmp_path):
    with api_alone(silent_redis, tmp_path) as base:  # one process: one event loop
        started = time.monotonic()
        ready = requests.get(f"{base}/readyz", timeout=10)
        assert ready.status_code == 503
        assert time.monotonic() - started < settings.READINESS_TIMEOUT + 1.5
        answers = []

        def read_job():
            response = requests.get(f"{base}/v1/jobs/{ID}", timeout=10)
            answers.append((response.status_code, response.headers.get("Retry-After")))

        readers = [threading.Thread(target=read_job) for _ in range(8)]
        started = time.monotonic()
        for reader in readers:
            reader.start()
        healthz = requests.get(f"{base}/healthz", timeout=10)
        healthz_seconds = time.monotonic() - started
        for reader in readers:
            reader.join()
        waited = time.monotonic() - started
    assert answers == [(503, str(settings.RETRY_AFTER))] * 8
    # Eight waits of 0.75 s each, side by side on one loop (one after another: 6 s).
    assert waited < 4 * settings.REDIS_SOCKET_TIMEOUT
    assert healthz.status_code == 200 and healthz_seconds < 0.5


def job_with_samples(samples):
    r = random.Random(0)
    x = [[r.uniform(-1, 1), r.uniform(-1, 1)] for _ in range(samples)]
    return {"data": {"x": x, "y": [r.choice([-1, 1]) for _ in x]}, "steps": 1}


@pytest.mark.parametrize(
    "path, make_body, headers",
    [
        ("/v1/graphs", lambda: largest_graph(200_000), {}),  # 11 MiB, parsed and checked
        # 11 MiB: checked, written out, and the whole body's fingerprint taken (the same
        # key and body again: the same job, replayed)
        ("/v1/jobs", lambda: job_with_samples(200_000), {"Idempotency-Key": "on-the-loop"}),
        # sent chunked, with no Content-Length to weigh it by (23 MiB: 1.4 s on a loop)
        (
            "/v1/jobs",
            lambda: job_with_samples(400_000),
            {"Transfer-Encoding": "chunked", "Idempotency-Key": "chunked"},
        ),
    ],
    ids=["graph", "job", "chunked job"],
)
def test_cpu_bound_requests_leave_the_event_loop_answering(
    redis_url, tmp_path, path, make_body, headers
):
    big = json.dumps(make_body())  # about a second of CPU each, on the loop or off it
    # No worker takes the jobs: as many may wait as are posted.
    with api_alone(redis_url, tmp_path, MAX_ACTIVE_JOBS="1000") as base:  # one process
        done = threading.Event()
        statuses = []

        def post_big():
            while not done.is_set():
                chunked = headers.get("Transfer-Encoding") == "chunked"
                response = requests.post(
                    f"{base}{path}",
                    data=iter([big.encode()]) if chunked else big,  # an iterator: chunked
                    headers={"Content-Type": "application/json", **headers},
                    timeout=120,
                )
                statuses.append(response.status_code)

        poster = threading.Thread(target=post_big)
        poster.start()
        latencies = []
        try:
            wait_until(lambda: statuses, timeout=120, interval=0.05)  # one done: all warm
            for _ in range(40):
                started = time.monotonic()
                assert requests.get(f"{base}/healthz", timeout=10).status_code == 200
                latencies.append(time.monotonic() - started)
                time.sleep(0.1)
        finally:
            done.set()
            poster.join(120)
    assert len(statuses) >= 2 and set(statuses) == {202}
    # On the loop, each parse would hold /healthz up for its second (p50 930 ms measured).
    latencies.sort()
    assert latencies[len(latencies) // 2] < 0.3 and latencies[-1] < 1.0, latencies[-5:]
