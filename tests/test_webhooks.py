"""Job webhooks in this process against the real Redis: the signature against the Standard
Webhooks test vector, the SSRF guard (unit and at submit), deliveries made due by the job's
own writes, sent by the sender to a receiver on loopback and verified with the
`standardwebhooks` package, retries, redirects, leases, coalesced progress, deletion.
test_webhooks_e2e runs the same through gunicorn and real workers."""

import socket
import threading
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from service.config import load_config
from service.store import JobStore, Report
from service.store.deliveries import WebhookDeliveries
from service.store.keys import Keys
from service.store.scripts import KEPT_PROGRESS_DELIVERIES
from service.webhook_targets import RefusedTarget, addresses, check_at_submit, parse_url
from service.worker import jobs
from service.worker.webhook_sender import WebhookSender, retry_schedule, signed_headers

from .service_helpers import TENANT, small_spec
from .webhook_receiver import Receiver

# The Standard Webhooks specification's published test vector.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = '{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

REFUSED = [
    "http://127.0.0.1/hook",
    "http://127.1.2.3:8080/hook",
    "http://10.1.2.3/hook",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/",
    "http://0.0.0.0/",
    "http://224.0.0.1/",
    "http://240.0.0.1/",
    "http://[::1]/hook",
    "http://[::]/",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:10.0.0.1]/",
    "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 of 169.254.169.254
    "http://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
    "http://[fd00::1]/",
    "http://[fe80::1]/",
    "http://[ff02::1]/",
    "http://localhost/hook",
    "http://localhost:9/hook",
    "http://2130706433/",  # 127.0.0.1 as one number, which the resolver accepts
    "ftp://example.com/file",
    "file:///etc/passwd",
    "gopher://example.com/",
    "https://user:secret@example.com/hook",
    "https://user@example.com/hook",
    "https:///no-host",
    "https://example.com:99999/",
    "https://exa mple.com/",
]


def sender_config(**overrides):
    return load_config(
        {
            "WEBHOOK_ALLOW_PRIVATE": True,
            "WEBHOOK_RETRY_SCHEDULE": "0,0",
            "WEBHOOK_READ_TIMEOUT": 2.0,
            "WEBHOOK_CONNECT_TIMEOUT": 2.0,
            **overrides,
        }
    )


def send_all(sender, limit=50):
    """Attempt every due delivery until none is due."""
    for _ in range(limit):
        if not sender.send_due():
            return
    raise AssertionError("deliveries kept coming due")


# -- signatures -------------------------------------------------------------------------------


def test_signature_matches_the_standard_webhooks_test_vector():
    at = datetime.fromtimestamp(VECTOR_TIMESTAMP, UTC)
    headers = signed_headers(VECTOR_SECRET, VECTOR_ID, "completed", VECTOR_BODY, at)
    assert headers["webhook-signature"] == VECTOR_SIGNATURE
    assert headers["webhook-id"] == VECTOR_ID
    assert headers["webhook-timestamp"] == str(VECTOR_TIMESTAMP)
    assert headers["webhook-event"] == "completed"


def test_signed_headers_verify_and_a_changed_body_does_not():
    secret = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="
    body = '{"id":"x","status":"succeeded"}'
    headers = signed_headers(secret, "msg_1", "completed", body, datetime.now(UTC))
    assert Webhook(secret).verify(body, headers) == {"id": "x", "status": "succeeded"}
    with pytest.raises(Exception, match="signature"):
        Webhook(secret).verify(body.replace("succeeded", "failed"), headers)


def test_retry_schedule_reads_lists_numbers_and_comma_strings():
    assert retry_schedule("5,300, 1800") == (5.0, 300.0, 1800.0)
    assert retry_schedule([0.2, 0.2]) == (0.2, 0.2)
    assert retry_schedule(7) == (7.0,)
    assert retry_schedule("") == ()
    assert sum(load_config()["WEBHOOK_RETRY_SCHEDULE"]) >= 3600  # at least an hour of retries
    with pytest.raises(ValueError):
        retry_schedule("-1")


# -- the SSRF guard ---------------------------------------------------------------------------


@pytest.mark.parametrize("url", REFUSED)
def test_check_at_submit_refuses(url):
    with pytest.raises(RefusedTarget):
        check_at_submit(url, allow_private=False)


def test_public_addresses_pass_and_private_ones_pass_only_when_allowed():
    check_at_submit("https://93.184.215.14/hook", allow_private=False)
    check_at_submit("http://[2606:4700::1111]:8443/x?y=1", allow_private=False)
    check_at_submit("http://127.0.0.1:8080/hook", allow_private=True)
    with pytest.raises(RefusedTarget, match="credentials"):
        check_at_submit("http://u:p@127.0.0.1/", allow_private=True)  # never lifted


def fake_resolver(*found):
    def resolve(host, port, type=0):
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, type, 6, "", (a, port)) for a in found
        ]

    return resolve


def test_a_name_is_judged_by_every_address_it_resolves_to():
    url = parse_url("https://hooks.example/path?q=1")
    assert url.target == "/path?q=1" and url.port == 443
    public = fake_resolver("93.184.215.14", "2606:4700::1111")
    assert addresses(url, False, public) == ["93.184.215.14", "2606:4700::1111"]
    mixed = fake_resolver("93.184.215.14", "10.0.0.7")  # one private address refuses it all
    with pytest.raises(RefusedTarget, match="resolves to 10.0.0.7"):
        addresses(url, False, mixed)
    assert addresses(url, True, mixed) == ["93.184.215.14", "10.0.0.7"]


def test_a_name_that_does_not_resolve_is_accepted_at_submit_and_fails_at_delivery():
    def nowhere(host, port, type=0):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    check_at_submit("https://not-yet.example/hook", False, nowhere)
    with pytest.raises(socket.gaierror):
        addresses(parse_url("https://not-yet.example/hook"), False, nowhere)


@pytest.mark.parametrize("url", REFUSED[:22])
def test_submit_refuses_private_targets_naming_the_field(client, url):
    response = client.post("/v1/jobs", json=small_spec(webhook={"url": url}))
    assert response.status_code == 422, response.json
    assert response.content_type == "application/problem+json"
    assert response.json["errors"][0]["path"] == "webhook/url"


def test_submit_checks_the_webhook_shape(client):
    bad = client.post(
        "/v1/jobs", json=small_spec(webhook={"url": "https://x.example/", "events": ["done"]})
    )
    assert bad.status_code == 422
    assert "webhook" in str(bad.json["errors"])
    good = client.post(
        "/v1/jobs", json=small_spec(webhook={"url": "https://93.184.215.14/", "events": ["start"]})
    )
    assert good.status_code == 202
    assert good.json["spec"]["webhook"] == {
        "url": "https://93.184.215.14/",
        "events": ["start", "completed"],
    }


def test_the_operator_may_allow_private_targets(make_app):
    client = make_app(WEBHOOK_ALLOW_PRIVATE="on").test_client()
    response = client.post("/v1/jobs", json=small_spec(webhook={"url": "http://127.0.0.1:9/"}))
    assert response.status_code == 202


# -- deliveries -------------------------------------------------------------------------------


@pytest.fixture
def private_client(make_app, worker_env):
    return make_app(WEBHOOK_ALLOW_PRIVATE=True).test_client()


def submit(client, url, events=("start",), **spec):
    response = client.post(
        "/v1/jobs", json=small_spec(webhook={"url": url, "events": list(events)}, **spec)
    )
    assert response.status_code == 202, response.json
    return response.json["id"]


def test_start_and_completed_are_delivered_signed(private_client, redis_client):
    secret = private_client.get("/v1/webhooks/secret").json["secret"]
    with Receiver() as receiver:
        job_id = submit(private_client, receiver.url)
        jobs.run_training(job_id)
        listed = private_client.get(f"/v1/jobs/{job_id}/webhooks").json
        assert [(d["event"], d["status"]) for d in listed["items"]] == [
            ("start", "pending"),
            ("completed", "pending"),
        ]
        assert all(d["next_attempt_at"] and d["attempts"] == [] for d in listed["items"])
        send_all(WebhookSender(redis_client, sender_config()))
        (p1, h1, b1), (p2, h2, b2) = receiver.wait_for(2)
    started, finished = Webhook(secret).verify(b1, h1), Webhook(secret).verify(b2, h2)
    assert p1 == p2 == "/hook"
    assert (h1["webhook-event"], h2["webhook-event"]) == ("start", "completed")
    assert h1["content-type"] == "application/json"
    # start carries the job as it was at its start; completed the job as GET shows it
    assert started["status"] == "running" and started["progress"]["step"] == 0
    assert started["started_at"] and started["finished_at"] is None
    assert finished == private_client.get(f"/v1/jobs/{job_id}").json
    assert finished["status"] == "succeeded"
    listed = private_client.get(f"/v1/jobs/{job_id}/webhooks").json["items"]
    assert [d["id"] for d in listed] == [h1["webhook-id"], h2["webhook-id"]]
    for delivery in listed:
        assert delivery["status"] == "delivered" and delivery["next_attempt_at"] is None
        (attempt,) = delivery["attempts"]
        assert attempt["http_status"] == 204 and attempt["error"] is None
        assert 0 <= attempt["duration_ms"] < 2000


def test_completed_is_sent_unasked_also_for_a_cancelled_job(private_client, redis_client):
    with Receiver() as receiver:
        job_id = submit(private_client, receiver.url, events=())
        assert private_client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
        send_all(WebhookSender(redis_client, sender_config()))
        ((_, headers, body),) = receiver.wait_for(1)
    assert headers["webhook-event"] == "completed"
    assert b'"status":"cancelled"' in body


def outcomes(redis_client) -> dict[str, int]:
    """The attempts counted by outcome for GET /metrics."""
    counted = redis_client.hgetall(Keys().webhook_outcomes())
    return {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in counted.items()}


def counted_since(before: dict[str, int], redis_client) -> dict[str, int]:
    after = outcomes(redis_client)
    return {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}


def test_a_failing_receiver_gets_it_on_the_third_attempt(private_client, redis_client):
    before = outcomes(redis_client)
    with Receiver(statuses=(500, 503, 200)) as receiver:
        job_id = submit(private_client, receiver.url, events=())
        jobs.run_training(job_id)
        send_all(WebhookSender(redis_client, sender_config()))
        got = receiver.wait_for(3)
    assert len({headers["webhook-id"] for _, headers, _ in got}) == 1  # one message, retried
    (delivery,) = private_client.get(f"/v1/jobs/{job_id}/webhooks").json["items"]
    assert delivery["status"] == "delivered"
    assert [a["http_status"] for a in delivery["attempts"]] == [500, 503, 200]
    assert [a["error"] for a in delivery["attempts"]] == ["HTTP 500", "HTTP 503", None]
    assert counted_since(before, redis_client) == {"retrying": 2, "delivered": 1}


def test_redirects_are_not_followed_and_the_last_failure_is_final(private_client, redis_client):
    before = outcomes(redis_client)
    with Receiver() as elsewhere, Receiver(statuses=(302,), location=elsewhere.url) as receiver:
        job_id = submit(private_client, receiver.url, events=())
        jobs.run_training(job_id)
        send_all(WebhookSender(redis_client, sender_config()))
        assert len(receiver.wait_for(3)) == 3
        time.sleep(0.2)
        assert elsewhere.requests == []
    (delivery,) = private_client.get(f"/v1/jobs/{job_id}/webhooks").json["items"]
    assert delivery["status"] == "failed" and delivery["next_attempt_at"] is None
    assert [a["http_status"] for a in delivery["attempts"]] == [302, 302, 302]
    assert "not followed" in delivery["attempts"][0]["error"]
    assert counted_since(before, redis_client) == {"retrying": 2, "failed": 1}


def test_a_dead_receiver_is_retried_on_schedule_then_failed(private_client, redis_client):
    with Receiver() as receiver:
        url = receiver.url
    job_id = submit(private_client, url, events=())  # nobody listens there any more
    jobs.run_training(job_id)
    sender = WebhookSender(redis_client, sender_config(WEBHOOK_RETRY_SCHEDULE=[60]))
    send_all(sender)
    (delivery,) = private_client.get(f"/v1/jobs/{job_id}/webhooks").json["items"]
    assert delivery["status"] == "pending"
    assert "ConnectionRefusedError" in delivery["attempts"][0]["error"]
    assert delivery["attempts"][0]["http_status"] is None
    wait = datetime.fromisoformat(delivery["next_attempt_at"]) - datetime.now(UTC)
    assert 50 < wait.total_seconds() <= 61


def test_the_guard_runs_again_at_delivery(make_app, worker_env, redis_client):
    """A target allowed at submit (here by the setting) is refused when the sender does not
    allow it: the attempt fails without a connection."""
    client = make_app(WEBHOOK_ALLOW_PRIVATE=True).test_client()
    with Receiver() as receiver:
        job_id = submit(client, receiver.url, events=())
        jobs.run_training(job_id)
        send_all(WebhookSender(redis_client, sender_config(WEBHOOK_ALLOW_PRIVATE=False)))
        assert receiver.requests == []
    (delivery,) = client.get(f"/v1/jobs/{job_id}/webhooks").json["items"]
    assert delivery["status"] == "failed"
    assert delivery["attempts"][0]["error"].startswith("refused: webhook/url host 127.0.0.1")


def test_a_claim_is_fenced_and_a_lapsed_one_is_taken_over(private_client, redis_client):
    job_id = submit(private_client, "http://127.0.0.1:9/", events=())
    private_client.post(f"/v1/jobs/{job_id}/cancel")
    first, second = WebhookDeliveries(redis_client), WebhookDeliveries(redis_client)
    (mine,) = first.claim(lease_ms=100)
    assert second.claim(lease_ms=100) == []  # held: nobody else gets it
    time.sleep(0.15)
    (theirs,) = second.claim(lease_ms=10_000)  # the lease lapsed (its sender died)
    assert theirs.member == mine.member
    record = first.load(mine).record
    assert not first.settle(mine, {**record, "status": "delivered"})  # too late: refused
    assert second.settle(theirs, {**record, "status": "delivered"})
    (delivery,) = private_client.get(f"/v1/jobs/{job_id}/webhooks").json["items"]
    assert delivery["status"] == "delivered"


# -- one job's deliveries one at a time, oldest first ------------------------------------------

NOBODY = "http://127.0.0.1:9/"  # claimed and settled by hand: never posted


def both_due(client):
    """A finished job whose `start` and `completed` deliveries are both due."""
    job_id = submit(client, NOBODY, events=["start"])
    jobs.run_training(job_id)
    return job_id


def event(claim):
    return claim.delivery_id.rpartition("_")[2]


def retried(deliveries, claim, in_ms):
    """Settle `claim` as a failed attempt whose retry is due `in_ms` from its claim."""
    record = deliveries.load(claim).record
    next_ms = claim.now_ms + in_ms
    assert deliveries.settle(claim, {**record, "next_ms": next_ms}, next_ms)


def delivered(deliveries, claim):
    assert deliveries.settle(claim, {**deliveries.load(claim).record, "status": "delivered"})


def test_two_claimers_never_hold_deliveries_of_one_job_at_once(private_client, redis_client):
    job_id = both_due(private_client)
    other = submit(private_client, NOBODY, events=())
    private_client.post(f"/v1/jobs/{other}/cancel")  # its completed is due too
    first, second = WebhookDeliveries(redis_client), WebhookDeliveries(redis_client)
    (mine,) = first.claim(lease_ms=10_000)
    assert (mine.job_id, event(mine)) == (job_id, "start")
    assert redis_client.get(Keys().webhook_sending(job_id)) == mine.member.encode()
    (theirs,) = second.claim(lease_ms=10_000, count=5)  # the other job's, not job_id's
    assert theirs.job_id == other
    assert second.claim(lease_ms=10_000, count=5) == []  # completed stays due, unclaimed
    delivered(first, mine)
    assert not redis_client.exists(Keys().webhook_sending(job_id))
    (then,) = second.claim(lease_ms=10_000, count=5)
    assert (then.job_id, event(then)) == (job_id, "completed")


def test_senders_in_threads_post_one_delivery_of_a_job_at_a_time(private_client, redis_client):
    job_ids = [both_due(private_client) for _ in range(4)]
    holding, overlaps, order = {}, [], {job_id: [] for job_id in job_ids}
    lock = threading.Lock()

    def sender():
        deliveries = WebhookDeliveries(redis_client)
        for _ in range(200):
            claims = deliveries.claim(lease_ms=10_000)
            if not claims and not redis_client.zcard(Keys().webhooks_due()):
                return
            for claim in claims:
                with lock:
                    holding[claim.job_id] = holding.get(claim.job_id, 0) + 1
                    if holding[claim.job_id] > 1:
                        overlaps.append(claim.member)
                    order[claim.job_id].append(event(claim))
                time.sleep(0.01)  # posting
                with lock:
                    holding[claim.job_id] -= 1
                delivered(deliveries, claim)
            time.sleep(0.001)

    threads = [threading.Thread(target=sender) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == []
    assert all(events == ["start", "completed"] for events in order.values()), order


def test_the_oldest_due_delivery_of_a_job_goes_first(private_client, redis_client):
    both_due(private_client)
    deliveries = WebhookDeliveries(redis_client)
    (start,) = deliveries.claim(lease_ms=10_000)
    assert event(start) == "start"
    retried(deliveries, start, in_ms=10_000)  # not due: it does not hold completed back
    (completed,) = deliveries.claim(lease_ms=10_000)
    assert event(completed) == "completed"
    retried(deliveries, completed, in_ms=0)
    # both due, completed since earlier (by its score): start was made first, so goes first
    due = Keys().webhooks_due()
    redis_client.zadd(due, {start.member: redis_client.zscore(due, completed.member) + 1})
    time.sleep(0.01)
    (first,) = deliveries.claim(lease_ms=10_000, count=5)
    assert first.member == start.member
    delivered(deliveries, first)
    (second,) = deliveries.claim(lease_ms=10_000, count=5)
    assert second.member == completed.member


def test_a_lease_that_runs_out_frees_the_job(private_client, redis_client):
    job_id = both_due(private_client)
    first, second = WebhookDeliveries(redis_client), WebhookDeliveries(redis_client)
    (mine,) = first.claim(lease_ms=100)  # and then its sender dies
    assert 0 < redis_client.pttl(Keys().webhook_sending(job_id)) <= 100
    assert second.claim(lease_ms=10_000) == []
    time.sleep(0.15)
    (theirs,) = second.claim(lease_ms=10_000)
    assert theirs.member == mine.member  # the oldest again, not completed past it


def test_a_stale_claimers_settle_frees_no_one_elses_claim(private_client, redis_client):
    job_id = both_due(private_client)
    sending = Keys().webhook_sending(job_id)
    stale, fresh, third = (WebhookDeliveries(redis_client) for _ in range(3))
    # the same delivery claimed again after the lease ran out: the stale settle is refused
    (mine,) = stale.claim(lease_ms=100)
    time.sleep(0.15)
    (theirs,) = fresh.claim(lease_ms=10_000)
    assert theirs.member == mine.member
    assert not stale.settle(mine, {**stale.load(mine).record, "status": "delivered"})
    assert redis_client.get(sending) == theirs.member.encode()
    assert third.claim(lease_ms=10_000) == []
    retried(fresh, theirs, in_ms=200)  # start fails: its retry due in 0.2 s
    # another delivery: the stale one holds completed, the lease runs out, start is due
    (mine,) = stale.claim(lease_ms=100)
    assert event(mine) == "completed"
    time.sleep(0.25)
    (theirs,) = fresh.claim(lease_ms=10_000)
    assert event(theirs) == "start"  # the oldest due
    assert stale.settle(mine, {**stale.load(mine).record, "status": "delivered"})  # its own
    assert redis_client.get(sending) == theirs.member.encode()  # still held: start's sender
    assert third.claim(lease_ms=10_000) == []


def test_the_sending_mark_goes_with_the_job(store, private_client, redis_client):
    job_id = both_due(private_client)
    sending = Keys().webhook_sending(job_id)
    WebhookDeliveries(redis_client).claim(lease_ms=60_000)
    assert redis_client.exists(sending)
    assert private_client.delete(f"/v1/jobs/{job_id}").status_code == 204
    assert not redis_client.exists(sending)
    # a job that ends while its start is being sent: the mark lives no longer than the job
    short = JobStore(redis_client, retention_days=0.5 / 86_400)
    job_id, run = started(store, private_client, NOBODY, ["start"])
    WebhookDeliveries(redis_client).claim(lease_ms=60_000)
    assert redis_client.pttl(Keys().webhook_sending(job_id)) > 50_000
    redis_client.hdel(store.keys.job(job_id), "retention_ms")  # so the store's: 0.5 s
    assert short.cancel(job_id, tenant=TENANT)[0]
    assert 0 < redis_client.pttl(Keys().webhook_sending(job_id)) <= 500
    assert 0 < redis_client.pttl(store.keys.job(job_id)) <= 500


def started(store, client, url, events):
    job_id = submit(client, url, events=events)
    run = store.start(job_id)
    return job_id, run


def progress_report(step, webhook="progress"):
    return Report(
        {"step": [step], "loss": [1.0], "accuracy": [0.5]},
        {"step": step + 1, "steps": 5},
        {"loss": 1.0, "accuracy": 0.5},
        webhook=webhook,
    )


def test_progress_is_coalesced_and_bounded(store, private_client, redis_client):
    job_id, run = started(store, private_client, "http://127.0.0.1:9/", ["progress"])
    deliveries = WebhookDeliveries(redis_client)
    for step in range(3):  # one pending progress delivery takes them all
        assert store.record(job_id, run.token, progress_report(step))
    items = private_client.get(f"/v1/jobs/{job_id}/webhooks").json["items"]
    assert [d["event"] for d in items] == ["progress"]
    step = 3
    for _ in range(KEPT_PROGRESS_DELIVERIES + 3):  # each delivered, then a new one
        (claim,) = deliveries.claim(1000)
        due = deliveries.load(claim)
        assert due.job["progress"]["step"] == step  # rebuilt when sent: the latest
        assert deliveries.settle(claim, {**due.record, "status": "delivered"})
        assert store.record(job_id, run.token, progress_report(step))
        step += 1
    items = private_client.get(f"/v1/jobs/{job_id}/webhooks").json["items"]
    assert len(items) == KEPT_PROGRESS_DELIVERIES
    assert items[-1]["status"] == "pending"
    assert [d["id"] for d in items][-1].endswith(f"_progress{KEPT_PROGRESS_DELIVERIES + 4}")


def test_progress_pending_at_the_end_is_superseded(store, private_client, redis_client):
    with Receiver() as receiver:
        job_id, run = started(store, private_client, receiver.url, ["progress"])
        assert store.record(job_id, run.token, progress_report(0))
        end = Report(
            {"step": [1], "loss": [1.0], "accuracy": [0.5]},
            {"step": 2, "steps": 5},
            {"loss": 1.0, "accuracy": 0.5},
            error={"type": "about:blank", "title": "t", "status": 500, "detail": "d"},
        )
        assert store.record(job_id, run.token, end)
        send_all(WebhookSender(redis_client, sender_config()))
        ((_, headers, body),) = receiver.wait_for(1)
    assert headers["webhook-event"] == "completed" and b'"status":"failed"' in body
    items = private_client.get(f"/v1/jobs/{job_id}/webhooks").json["items"]
    assert [(d["event"], d["status"]) for d in items] == [
        ("progress", "superseded"),
        ("completed", "delivered"),
    ]


def test_progress_is_not_due_unless_asked(store, private_client):
    job_id, run = started(store, private_client, "http://127.0.0.1:9/", ["start"])
    assert store.record(job_id, run.token, progress_report(0))
    items = private_client.get(f"/v1/jobs/{job_id}/webhooks").json["items"]
    assert [d["event"] for d in items] == ["start"]


def test_deliveries_go_with_the_job(store, private_client, redis_client):
    job_id = submit(private_client, "http://127.0.0.1:9/", events=())
    private_client.post(f"/v1/jobs/{job_id}/cancel")
    keys = store.keys
    assert redis_client.zcard(keys.webhooks_due()) == 1
    assert 0 < redis_client.pttl(keys.webhook_deliveries(job_id))  # expires with the job
    assert private_client.delete(f"/v1/jobs/{job_id}").status_code == 204
    assert redis_client.zcard(keys.webhooks_due()) == 0
    assert not redis_client.exists(keys.webhook_deliveries(job_id))
    assert private_client.get(f"/v1/jobs/{job_id}/webhooks").status_code == 404


def test_another_tenants_deliveries_are_not_found(private_client, make_app, redis_client):
    from service.store import ApiKeys

    from .service_helpers import client_with

    job_id = submit(private_client, "http://127.0.0.1:9/")
    other = ApiKeys(redis_client).create("someone-else")[1]
    app = make_app(WEBHOOK_ALLOW_PRIVATE=True)
    assert client_with(app, other).get(f"/v1/jobs/{job_id}/webhooks").status_code == 404
    assert private_client.get(f"/v1/jobs/{job_id}/webhooks").status_code == 200
    assert private_client.get("/v1/jobs/nope/webhooks").status_code == 404
    assert TENANT != "someone-else"


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Step:
    """What engine.train hands on_step."""

    def __init__(self, step):
        self.step, self.loss, self.accuracy = step, 1.0, 0.5

    def checkpoint(self, arrays=False):
        return None


def test_the_recorder_makes_progress_due_at_most_every_interval(
    store, private_client, redis_client
):
    from service.worker.recorder import Pace, Recorder, Watch

    job_id, run = started(store, private_client, "http://127.0.0.1:9/", ["progress"])
    deliveries, clock = WebhookDeliveries(redis_client), Clock()
    with store.cancel_listener(job_id) as listener:
        pace = Pace(0.25, 1000.0, webhook_interval=5.0)
        recorder = Recorder(store, job_id, run, pace, Watch(listener), clock)
        for step in range(40):  # 12 s of training, a flush every 0.3 s
            clock.now = step * 0.3
            recorder(Step(step))
            for claim in deliveries.claim(1000, 10):  # a sender that delivers at once
                deliveries.settle(claim, {**deliveries.load(claim).record, "status": "delivered"})
    items = private_client.get(f"/v1/jobs/{job_id}/webhooks").json["items"]
    assert [d["event"] for d in items] == ["progress", "progress"]  # at 5 s and at 10 s
