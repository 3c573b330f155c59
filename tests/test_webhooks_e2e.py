"""Job webhooks end to end: the real API under gunicorn and two real workers (a stack of its
own, allowing loopback targets and retrying after 0.3 s) post to a receiver on loopback, which
verifies every delivery with the `standardwebhooks` package and the tenant's secret; the
session's stack (no such setting) refuses private targets at submit."""

import pytest
from standardwebhooks import Webhook

from .service_helpers import ApiSession, small_spec, wait_until
from .stacks import own_stack
from .webhook_receiver import Receiver

pytestmark = pytest.mark.e2e
WEBHOOKS_DB = 7  # a database of its own (the session stack's is 1, the in-process tests' 0)
TERMINAL = ("succeeded", "failed", "cancelled")


@pytest.fixture(scope="module")
def hooked(redis_port, tmp_path_factory):
    """A stack that allows private webhook targets, retries after 0.3 s twice, and sends
    progress at most every 0.5 s; a session on it with tenant `local`'s key."""
    settings = {
        "GRADSERVE_WEBHOOK_ALLOW_PRIVATE": "on",
        "GRADSERVE_WEBHOOK_RETRY_SCHEDULE": "0.3,0.3",
        "GRADSERVE_WEBHOOK_POLL_INTERVAL": "0.1",
        "GRADSERVE_WEBHOOK_PROGRESS_INTERVAL": "0.5",
    }
    directory = tmp_path_factory.mktemp("webhooks")
    with own_stack(redis_port, WEBHOOKS_DB, directory, settings, workers=2) as base:
        with ApiSession(base, (directory / "api-key").read_text().strip()) as session:
            yield session


def submit(api, url, events, **spec):
    response = api.post("/v1/jobs", json=small_spec(webhook={"url": url, "events": events}, **spec))
    assert response.status_code == 202, response.text
    return response.json()["id"]


def settled(api, job_id, count):
    """The job's deliveries once `count` of them are settled (none pending)."""

    def done():
        items = api.get(f"/v1/jobs/{job_id}/webhooks").json()["items"]
        finished = [d for d in items if d["status"] != "pending"]
        return items if len(finished) >= count and len(finished) == len(items) else None

    return wait_until(done, timeout=60, interval=0.1)


def test_start_and_completed_arrive_signed_with_the_tenants_secret(hooked):
    secret = hooked.get("/v1/webhooks/secret").json()["secret"]
    with Receiver() as receiver:
        job_id = submit(hooked, receiver.url, ["start"])
        got = receiver.wait_for(2)
    # a job's deliveries go one at a time, in the order made (two workers' senders share them)
    (_, h1, b1), (_, h2, b2) = got
    started, finished = Webhook(secret).verify(b1, h1), Webhook(secret).verify(b2, h2)
    assert (h1["webhook-event"], h2["webhook-event"]) == ("start", "completed")
    assert started["id"] == finished["id"] == job_id
    assert started["status"] == "running" and started["finished_at"] is None
    assert finished["status"] == "succeeded" and finished["model_id"]
    assert finished == hooked.get(f"/v1/jobs/{job_id}").json()
    with pytest.raises(Exception, match="signature"):
        Webhook("whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY=").verify(b2, h2)
    items = settled(hooked, job_id, 2)
    assert [(d["id"], d["status"]) for d in items] == [
        (h1["webhook-id"], "delivered"),
        (h2["webhook-id"], "delivered"),
    ]


def test_a_receiver_failing_twice_gets_it_on_the_third_attempt(hooked):
    with Receiver(statuses=(500, 500, 200)) as receiver:
        job_id = submit(hooked, receiver.url, [])
        got = receiver.wait_for(3)
        (delivery,) = settled(hooked, job_id, 1)
    assert {headers["webhook-id"] for _, headers, _ in got} == {delivery["id"]}
    assert delivery["event"] == "completed" and delivery["status"] == "delivered"
    assert [a["http_status"] for a in delivery["attempts"]] == [500, 500, 200]
    assert all(a["at"] and a["duration_ms"] >= 0 for a in delivery["attempts"])


def test_a_redirect_is_not_followed(hooked):
    with Receiver() as elsewhere, Receiver(statuses=(307,), location=elsewhere.url) as receiver:
        job_id = submit(hooked, receiver.url, [])
        (delivery,) = settled(hooked, job_id, 1)
        assert len(receiver.requests) == 3
        assert elsewhere.requests == []
    assert delivery["status"] == "failed"
    assert [a["http_status"] for a in delivery["attempts"]] == [307, 307, 307]


def test_progress_is_throttled_and_carries_the_latest_step(hooked):
    secret = hooked.get("/v1/webhooks/secret").json()["secret"]
    with Receiver() as receiver:
        job_id = submit(hooked, receiver.url, ["progress"], steps=25_000)  # 2 s or more
        wait_until(lambda: hooked.get(f"/v1/jobs/{job_id}").json()["status"] in TERMINAL, 60)
        items = settled(hooked, job_id, 1)
        got = list(receiver.requests)
    events = [(h["webhook-event"], Webhook(secret).verify(b, h)) for _, h, b in got]
    steps = [job["progress"]["step"] for event, job in events if event == "progress"]
    assert steps, "no progress delivery"
    assert steps == sorted(steps) and 0 < steps[0] and steps[-1] <= 25_000
    assert [event for event, _ in events].count("completed") == 1
    assert events[-1][0] == "completed"  # after every progress delivery (made before it)
    posted = [h["webhook-id"] for _, h, _ in got]
    assert len(set(posted)) == len(posted)  # each one a delivery of its own, posted once
    # the job's latest (at most 10 kept) are the last posted: none left behind or backlogged
    kept = [d["id"] for d in items if d["event"] == "progress" and d["status"] == "delivered"]
    assert kept and posted[-1 - len(kept) : -1] == kept


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://10.0.0.5/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8080/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://localhost:8080/hook",
        "https://user:pass@example.com/hook",
        "ftp://example.com/hook",
    ],
)
def test_the_default_stack_refuses_private_targets(api, url):
    response = api.post("/v1/jobs", json=small_spec(webhook={"url": url}))
    assert response.status_code == 422, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert response.json()["errors"][0]["path"] == "webhook/url"
