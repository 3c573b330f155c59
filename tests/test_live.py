"""Live progress over HTTP (contract section 7): the events stream, `Prefer: wait`, job
metadata, against the real API under gunicorn and real workers."""

import socket
import time

import pytest

from service.stack import redis_server
from service.store import ApiKeys
from service.store.queue import connect

from .conftest import E2E_DB
from .service_helpers import (
    MICROGRAD_FIGURES,
    MICROGRAD_GRAPH,
    ApiSession,
    small_spec,
    wait_until,
    whole_history,
)
from .sse import events_of, stream

pytestmark = pytest.mark.e2e
TERMINAL = ("succeeded", "failed", "cancelled")


def submit(api, spec):
    response = api.post("/v1/jobs", json=spec)
    assert response.status_code == 202, response.text
    return response.json()["id"]


@pytest.fixture(scope="module")
def other(stack, redis_port):
    """A session of another tenant on the same stack."""
    keys = ApiKeys(connect(redis_server.url(redis_port, E2E_DB)))
    with ApiSession(stack, keys.create("live-other")[1]) as session:
        yield session


def test_every_step_once_across_a_reconnect_with_last_event_id(api):
    steps = 30_000  # a few seconds of training: many progress events
    job_id = submit(api, small_spec(steps=steps))
    seen, statuses = [], []
    with stream(api, f"/v1/jobs/{job_id}/events") as first:
        assert first.status_code == 200
        assert first.headers["Content-Type"].startswith("text/event-stream")
        assert first.headers["Cache-Control"] == "no-cache"
        events = events_of(first)
        assert next(events)["retry"] > 0  # the reconnection hint comes first
        progress_events = 0
        for event in events:
            if event.get("event") == "status":
                assert event["id"] is None
                statuses.append(event["data"]["status"])
            elif event.get("event") == "progress":
                assert int(event["id"]) == event["data"]["step"][-1]
                seen += event["data"]["step"]
                progress_events += 1
                if progress_events == 3:
                    break  # the connection drops here
    assert statuses and statuses[0] in ("queued", "running")
    last_id = seen[-1]
    assert last_id < steps - 1, "the job must still be running at the reconnect"
    ended_at = None
    with stream(api, f"/v1/jobs/{job_id}/events", last_event_id=last_id) as second:
        assert second.status_code == 200
        previous = time.monotonic()
        intervals = []
        for event in events_of(second):
            if event.get("event") == "progress":
                seen += event["data"]["step"]
                now = time.monotonic()
                intervals.append(now - previous)
                previous = now
            elif event.get("event") == "status":
                statuses.append(event["data"]["status"])
                if event["data"]["status"] in TERMINAL:
                    ended_at = len(seen)
    assert statuses[-1] == "succeeded", statuses
    assert ended_at == len(seen), "the terminal status comes after every step"
    assert seen == list(range(steps)), "every step exactly once, in order"
    # Batched: far fewer events than steps, at most about 4 a second while it runs.
    assert len(intervals) < steps / 10
    stored = whole_history(lambda path: api.get(path).json(), f"/v1/jobs/{job_id}/history")
    assert stored["step"] == seen


def test_a_finished_job_streams_its_steps_then_its_status_and_ends(api):
    job_id = submit(api, small_spec(steps=40))
    wait_until(lambda: api.get(f"/v1/jobs/{job_id}").json()["status"] in TERMINAL)
    with stream(api, f"/v1/jobs/{job_id}/events", last_event_id=9) as response:
        events = [e for e in events_of(response) if "event" in e]
    kinds = [e["event"] for e in events]
    assert kinds[-1] == "status" and events[-1]["data"]["status"] == "succeeded"
    steps = [s for e in events if e["event"] == "progress" for s in e["data"]["step"]]
    assert steps == list(range(10, 40))
    history = api.get(f"/v1/jobs/{job_id}/history?since=10").json()
    progress = [e for e in events if e["event"] == "progress"]
    assert [x for e in progress for x in e["data"]["loss"]] == history["loss"]


def test_another_tenants_events_are_404(api, other):
    job_id = submit(api, small_spec())
    response = other.get(f"/v1/jobs/{job_id}/events", timeout=10)
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("application/problem+json")


def test_a_bad_last_event_id_is_422_naming_it(api):
    job_id = submit(api, small_spec())
    response = api.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": "abc"}, timeout=10)
    assert response.status_code == 422
    assert response.json()["errors"][0]["path"] == "Last-Event-ID"


def open_stream(base, key, job_id):
    """A raw socket with an event stream open on it (its first bytes read)."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(
        f"GET /v1/jobs/{job_id}/events HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {key}\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    head = b""
    while b"retry:" not in head:
        chunk = sock.recv(65536)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    sock.setblocking(False)
    return sock


def drain(socks):
    """Read whatever the streams have sent (clients that keep up)."""
    for sock in socks:
        try:
            while sock.recv(1 << 20):
                pass
        except BlockingIOError:
            pass


def test_200_open_streams_leave_small_requests_fast(api):
    key = api.headers["Authorization"].removeprefix("Bearer ")
    # Jobs that run for as long as the test (a few steps a second: micrograd's own engine on
    # the demo) and stay open: two run, one waits (two workers).
    jobs = [submit(api, {"engine": "reference", "steps": 1_000_000}) for _ in range(3)]
    socks = []
    try:
        for i in range(200):
            socks.append(open_stream(api.base, key, jobs[i % len(jobs)]))
            if i % 20 == 0:
                drain(socks)
        slowest = 0.0
        for _ in range(10):
            drain(socks)
            for path in ("/healthz", f"/v1/jobs/{jobs[0]}"):
                start = time.monotonic()
                response = api.get(path, timeout=5)
                slowest = max(slowest, time.monotonic() - start)
                assert response.status_code == 200
            time.sleep(0.1)
        assert slowest < 1.0, f"a small request took {slowest:.2f} s with 200 streams open"
    finally:
        for sock in socks:
            sock.close()
        for job_id in jobs:
            api.post(f"/v1/jobs/{job_id}/cancel")


# -- Prefer: wait ---------------------------------------------------------------------------


def test_prefer_wait_returns_the_finished_demo_job_in_one_request(api):
    start = time.monotonic()
    response = api.post("/v1/jobs", json={}, headers={"Prefer": "wait=10"}, timeout=30)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "succeeded", response.json()
    assert response.json()["model_id"]
    assert response.headers["Preference-Applied"] == "wait=10"
    assert "Prefer" in response.headers["Vary"]
    assert time.monotonic() - start < 10


def test_prefer_wait_on_get_holds_until_the_job_ends_or_the_wait_does(api):
    job_id = submit(api, small_spec(steps=20_000))
    response = api.get(f"/v1/jobs/{job_id}", headers={"Prefer": "wait=30"}, timeout=60)
    assert response.json()["status"] == "succeeded"
    assert response.headers["Preference-Applied"] == "wait=30"
    long = submit(api, {"engine": "reference", "steps": 1_000_000})
    try:
        start = time.monotonic()
        response = api.get(f"/v1/jobs/{long}", headers={"Prefer": "wait=1"}, timeout=10)
        held = time.monotonic() - start
        assert response.json()["status"] in ("queued", "running")
        assert 0.9 < held < 3, held
    finally:
        api.post(f"/v1/jobs/{long}/cancel")
    # Over MAX_WAIT (60): cut to it, and said so; a finished job answers at once.
    response = api.get(f"/v1/jobs/{job_id}", headers={"Prefer": "wait=100000"}, timeout=10)
    assert response.headers["Preference-Applied"] == "wait=60"
    # Not a number of seconds: ignored, as RFC 7240 lets a server ignore a preference.
    response = api.get(f"/v1/jobs/{job_id}", headers={"Prefer": "wait=soon"}, timeout=10)
    assert response.status_code == 200 and "Preference-Applied" not in response.headers


def test_prefer_respond_async_and_wait_on_a_graph(api):
    queued = api.post("/v1/graphs", json=MICROGRAD_GRAPH, headers={"Prefer": "respond-async"})
    assert queued.status_code == 202 and queued.json()["status"] == "queued"
    graph_id = queued.json()["id"]
    got = api.get(f"/v1/graphs/{graph_id}", headers={"Prefer": "wait=10"}, timeout=30)
    assert got.json()["status"] == "succeeded"
    assert got.headers["Preference-Applied"] == "wait=10"
    both = api.post(
        "/v1/graphs", json=MICROGRAD_GRAPH, headers={"Prefer": "respond-async, wait=10"}
    )
    assert both.status_code == 201, both.text
    assert both.json()["status"] == "succeeded"
    value = both.json()["result"]["value"]
    assert abs(value - MICROGRAD_FIGURES["value"]) < 1e-3
    assert both.headers["Preference-Applied"] == "respond-async, wait=10"
    brief = api.post(
        "/v1/graphs",
        json=MICROGRAD_GRAPH,
        headers={"Prefer": "respond-async, wait=10, return=minimal"},
    )
    assert brief.status_code == 201, brief.text
    assert brief.headers["Preference-Applied"] == "respond-async, wait=10, return=minimal"
    summary = {"output": "g", "value": value, "nodes": len(MICROGRAD_GRAPH["nodes"])}
    assert brief.json()["result"] == summary  # the worker stored it with the result


# -- metadata -------------------------------------------------------------------------------


def test_metadata_over_http_shown_and_filtered(api):
    tag = f"live-{time.monotonic_ns()}"  # this test's jobs alone
    spec = small_spec(metadata={"suite": tag, "kind": "a"})
    first = api.post("/v1/jobs", json=spec, headers={"Prefer": "wait=20"}).json()
    assert first["metadata"] == {"suite": tag, "kind": "a"}
    second = submit(api, small_spec(metadata={"suite": tag, "kind": "b"}))
    assert api.get(f"/v1/jobs/{second}").json()["metadata"]["kind"] == "b"
    page = api.get(f"/v1/jobs?metadata.suite={tag}&metadata.kind=a").json()
    assert [job["id"] for job in page["items"]] == [first["id"]]
    page = api.get(f"/v1/jobs?metadata.suite={tag}&status=succeeded&limit=100").json()
    assert first["id"] in [job["id"] for job in page["items"]]
    bad = api.post("/v1/jobs", json=small_spec(metadata={"suite": 1}))
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["path"] == "metadata/suite"
