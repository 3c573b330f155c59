"""MAX_EVENT_STREAMS in-process: one more stream than a process may hold is a 503 problem
with Retry-After, a `Prefer: wait` beyond it is answered at once, and a closed stream
frees its place."""

import time

from .service_helpers import small_spec


def test_streams_beyond_the_cap_are_503_and_a_closed_one_frees_its_place(make_app):
    app = make_app(MAX_EVENT_STREAMS=1)
    client = app.test_client()
    job_id = client.post("/v1/jobs", json=small_spec()).get_json()["id"]  # stays queued
    first = client.get(f"/v1/jobs/{job_id}/events", buffered=False)
    assert first.status_code == 200
    assert first.headers["X-Accel-Buffering"] == "no"
    assert next(first.response).startswith(b"retry: ")
    second = client.get(f"/v1/jobs/{job_id}/events")
    assert second.status_code == 503
    assert second.get_json()["type"].endswith("/too-many-streams")
    assert int(second.headers["Retry-After"]) > 0
    start = time.monotonic()
    waited = client.get(f"/v1/jobs/{job_id}", headers={"Prefer": "wait=5"})
    assert time.monotonic() - start < 2 and "Preference-Applied" not in waited.headers
    first.close()
    third = client.get(f"/v1/jobs/{job_id}/events", buffered=False)
    assert third.status_code == 200
    third.close()
