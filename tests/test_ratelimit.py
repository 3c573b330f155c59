"""Rate limits: in-process on the real Redis (create_app with small limits), then over HTTP
under gunicorn with two API processes sharing the count and no worker (jobs stay queued):
a 429 problem with a Retry-After that works, the RateLimit-* headers, a budget per key, the
tighter one for submissions, refused keys counted per address, what is never limited, a
Redis that fails or is full, and the cap on active jobs at the same time from many clients."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from service import settings
from service.stack import redis_server
from service.store import ApiKeys, Keys
from service.store.queue import connect

from .service_helpers import (
    MICROGRAD_GRAPH,
    ApiSession,
    check_problem,
    client_with,
    small_spec,
)
from .stacks import own_stack

HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy")


def rate_limited(response, setting):
    """A 429 `rate-limited` problem naming the setting and the limit, with a Retry-After
    of whole seconds: those seconds."""
    body = response.get_json() if hasattr(response, "get_json") else response.json()
    content_type = response.headers["Content-Type"]
    check_problem(response.status_code, content_type, body, 429, None)
    assert body["type"].endswith("/rate-limited")
    assert f"({setting})" in body["detail"] and body["limit"] in body["detail"]
    assert response.headers["RateLimit-Remaining"] == "0"
    retry_after = int(response.headers["Retry-After"])
    assert retry_after >= 1
    return retry_after


def budget(response):
    """The RateLimit-* headers as (limit, remaining, reset seconds, policy)."""
    limit, remaining, reset, policy = (response.headers[name] for name in HEADERS)
    return int(limit), int(remaining), int(reset), policy


def test_beyond_the_limit_is_429_and_retry_after_is_a_wait_that_works(make_app):
    client = make_app(RATE_LIMIT="3/2 seconds").test_client()
    seen = [budget(client.get("/v1/jobs")) for _ in range(3)]
    assert [(limit, remaining) for limit, remaining, _, _ in seen] == [(3, 2), (3, 1), (3, 0)]
    assert all(0 <= reset <= 2 and policy == "3;w=2" for _, _, reset, policy in seen)
    refused = client.get("/v1/jobs")
    retry_after = rate_limited(refused, "RATE_LIMIT")
    assert retry_after <= 2 and refused.get_json()["limit"] == "3 per 2 second"
    assert client.get("/v1/jobs").status_code == 429  # a refusal spends nothing, nor waits
    time.sleep(retry_after)
    assert client.get("/v1/jobs").status_code == 200


def test_two_keys_have_budgets_of_their_own(make_app, redis_client):
    app = make_app(RATE_LIMIT="2/minute")
    mine, theirs = app.test_client(), client_with(app, ApiKeys(redis_client).create("b")[1])
    assert [mine.get("/v1/jobs").status_code for _ in range(3)] == [200, 200, 429]
    assert [theirs.get("/v1/jobs").status_code for _ in range(3)] == [200, 200, 429]
    same_tenant = client_with(app, ApiKeys(redis_client).create("b")[1])
    assert same_tenant.get("/v1/jobs").status_code == 200  # per key, not per tenant


def test_submissions_have_a_tighter_budget_of_their_own(make_app):
    client = make_app(RATE_LIMIT="10/minute", RATE_LIMIT_SUBMIT="2/minute").test_client()
    made = client.post("/v1/graphs", json=MICROGRAD_GRAPH)
    assert made.status_code == 201 and budget(made)[:2] == (2, 1)  # the tighter one shows
    assert client.post("/v1/jobs", json=small_spec()).status_code == 202
    rate_limited(client.post("/v1/graphs", json=MICROGRAD_GRAPH), "RATE_LIMIT_SUBMIT")
    rate_limited(client.post("/v1/jobs", json=small_spec()), "RATE_LIMIT_SUBMIT")
    listed = client.get("/v1/jobs")  # the rest of the API still answers
    assert listed.status_code == 200
    assert budget(listed)[:2] == (10, 7)  # two submissions and this: the refused spent none


def test_refused_keys_are_counted_per_address_and_never_block_a_valid_key(make_app):
    app = make_app(RATE_LIMIT="5/minute", RATE_LIMIT_UNAUTHENTICATED="2/minute")
    stranger, bad_key = client_with(app), client_with(app, "gs_000000000000_" + "A" * 43)
    assert stranger.get("/v1/jobs").status_code == 401
    assert bad_key.get("/v1/jobs").status_code == 401  # the same address: the same budget
    rate_limited(stranger.get("/v1/jobs"), "RATE_LIMIT_UNAUTHENTICATED")
    rate_limited(bad_key.get("/v1/jobs"), "RATE_LIMIT_UNAUTHENTICATED")
    elsewhere = stranger.get("/v1/jobs", environ_overrides={"REMOTE_ADDR": "127.0.0.2"})
    assert elsewhere.status_code == 401
    valid = app.test_client().get("/v1/jobs")  # from the address that is over its budget
    assert valid.status_code == 200 and budget(valid)[:2] == (5, 4)


def test_with_auth_off_the_address_stands_for_the_key(make_app):
    app = make_app(AUTH="off", RATE_LIMIT="2/minute")
    here, there = client_with(app), client_with(app)
    there.environ_base["REMOTE_ADDR"] = "127.0.0.2"
    assert [here.get("/v1/jobs").status_code for _ in range(3)] == [200, 200, 429]
    assert [there.get("/v1/jobs").status_code for _ in range(3)] == [200, 200, 429]
    assert "this address" in here.get("/v1/jobs").get_json()["detail"]


UNLIMITED = [
    "/healthz",
    "/readyz",
    "/openapi.json",
    "/docs",
    "/redoc",
    "/docs-assets/redoc/redoc.standalone.js",
]


@pytest.mark.parametrize("path", UNLIMITED)
def test_health_the_document_and_the_docs_are_never_limited(make_app, path):
    client = client_with(make_app(RATE_LIMIT="1/minute", RATE_LIMIT_UNAUTHENTICATED="1/minute"))
    answers = [client.get(path) for _ in range(3)]
    assert len({a.status_code for a in answers}) == 1 and answers[0].status_code != 429
    assert not any(name in answers[-1].headers for name in (*HEADERS, "Retry-After"))


def test_every_v1_path_counts_even_one_no_route_matches(make_app):
    client = make_app(RATE_LIMIT="2/minute").test_client()
    assert client.get("/v1/nothing").status_code == 404
    assert client.delete("/v1/graphs").status_code == 405
    rate_limited(client.get("/v1/jobs"), "RATE_LIMIT")


def test_an_empty_limit_is_none(make_app):
    client = make_app(RATE_LIMIT="", RATE_LIMIT_SUBMIT="").test_client()
    answers = [client.get("/v1/jobs") for _ in range(20)]
    assert {a.status_code for a in answers} == {200}
    assert "RateLimit-Limit" not in answers[-1].headers


@pytest.mark.parametrize("value", ["lots", "0/minute", "5/fortnight", "-1/second", 600])
def test_a_limit_that_is_not_one_is_refused_at_start(make_app, value):
    with pytest.raises(ValueError, match="GRADSERVE_RATE_LIMIT_SUBMIT must be like 600/minute"):
        make_app(RATE_LIMIT_SUBMIT=value)


def test_the_counters_live_under_the_stores_prefix_and_expire_with_their_window(
    make_app, redis_client
):
    client = make_app(RATE_LIMIT="5/minute", RATE_LIMIT_SUBMIT="2/hour").test_client()
    client.post("/v1/jobs", json=small_spec())
    counters = sorted(k.decode() for k in redis_client.scan_iter("*ratelimit*"))
    assert len(counters) == 2
    assert all(k.startswith(Keys().rate_limits() + ":") for k in counters)
    ttls = {k.rsplit("/", 1)[-1]: redis_client.ttl(k) for k in counters}
    assert 0 < ttls["minute"] <= 60 and 60 < ttls["hour"] <= 3600


def test_a_redis_that_does_not_answer_is_503_never_500(make_app):
    """The limiter lets the request through (swallow_errors); the key check, or with AUTH
    off the route, meets the dead Redis and answers 503 with Retry-After."""
    dead = redis_server.url(redis_server.free_port())
    for auth in ("on", "off"):
        client = make_app(REDIS_URL=dead, AUTH=auth, RATE_LIMIT="5/minute").test_client()
        started = time.monotonic()
        answer = client.get("/v1/jobs")
        assert answer.status_code == 503, answer.get_json()
        assert answer.get_json()["type"].endswith("/store-unavailable")
        assert answer.headers["Retry-After"] == "2" and "RateLimit-Limit" not in answer.headers
        assert time.monotonic() - started < 2
        assert client.get("/healthz").status_code == 200


def test_a_full_redis_still_serves_reads_unlimited_and_refuses_writes(make_app, redis_client):
    """At its memory ceiling Redis refuses the limiter's scripts: the reads go on (without
    the headers), the writes are the store's 503, as without a limiter."""
    client = make_app(RATE_LIMIT="2/minute").test_client()
    job = client.post("/v1/jobs", json=small_spec()).get_json()["id"]
    redis_client.config_set("maxmemory", 1)
    try:
        reads = [client.get(f"/v1/jobs/{job}") for _ in range(4)]
        assert [r.status_code for r in reads] == [200] * 4
        assert "RateLimit-Limit" not in reads[-1].headers
        refused = client.post("/v1/jobs", json=small_spec())
        assert refused.status_code == 503 and refused.json["type"].endswith("/store-full")
        assert refused.headers["Retry-After"] == str(settings.STORE_FULL_RETRY_AFTER)
    finally:
        redis_client.config_set("maxmemory", 0)
    assert client.get(f"/v1/jobs/{job}").status_code == 200  # counting again: the 2nd
    rate_limited(client.get(f"/v1/jobs/{job}"), "RATE_LIMIT")


def test_the_openapi_document_says_every_v1_operation_may_be_429(client):
    document = client.get("/openapi.json").get_json()
    response = document["components"]["responses"]["RATE_LIMITED"]
    assert "application/problem+json" in response["content"]
    assert {"Retry-After", *HEADERS} <= set(response["headers"])
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            limited = operation["responses"].get("429")
            if path.startswith("/v1/"):
                assert limited == {"$ref": "#/components/responses/RATE_LIMITED"}, path
            else:
                assert limited is None, path


# -- over HTTP: gunicorn with two processes, no worker ------------------------------------

LIMITED_DB = 2  # a database of its own: the session stack's is 1, the in-process tests' 0
HTTP_LIMIT = 5
HTTP_CAP = 2


@pytest.fixture(scope="module")
def limited(redis_port, tmp_path_factory):
    """The API under gunicorn (service/stack, WEB_CONCURRENCY=2) with a small rate limit
    and cap, and no worker, so jobs stay queued; its base URL and a maker of keys."""
    settings = {
        "GRADSERVE_RATE_LIMIT": f"{HTTP_LIMIT}/2 seconds",
        "GRADSERVE_MAX_ACTIVE_JOBS": str(HTTP_CAP),
    }
    keys = ApiKeys(connect(redis_server.url(redis_port, LIMITED_DB)))
    directory = tmp_path_factory.mktemp("limited")
    with own_stack(redis_port, LIMITED_DB, directory, settings) as base:
        yield base, lambda tenant: keys.create(tenant)[1]


def at_once(count, call):
    """`call()` from `count` threads let go together (each its own connection)."""
    start = threading.Barrier(count)

    def one(_):
        start.wait()
        return call()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


@pytest.mark.e2e
def test_the_limit_holds_across_the_api_processes_over_http(limited):
    """Twelve requests at once on new connections (both gunicorn processes answer): exactly
    the limit gets through, as one count in Redis; after Retry-After the next one does."""
    base, new_key = limited
    headers = {"Authorization": f"Bearer {new_key('burst')}"}
    url = f"{base}/v1/jobs"
    answers = at_once(12, lambda: requests.get(url, headers=headers, timeout=10))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * HTTP_LIMIT + [429] * (12 - HTTP_LIMIT)
    remaining = sorted(int(a.headers["RateLimit-Remaining"]) for a in answers if a.ok)
    # Each answer reads its budget after counting itself; with requests interleaved on a
    # process's event loop two may read the same count, but never more than is left.
    assert min(remaining) == 0 and all(0 <= r < HTTP_LIMIT for r in remaining)
    refused = [a for a in answers if a.status_code == 429]
    waits = {rate_limited(a, "RATE_LIMIT") for a in refused}
    assert max(waits) <= 2
    time.sleep(max(waits))
    assert requests.get(url, headers=headers, timeout=10).status_code == 200


@pytest.mark.e2e
def test_a_flood_from_one_key_leaves_another_keys_budget_whole(limited):
    base, new_key = limited
    flooder, other = ApiSession(base, new_key("flood")), ApiSession(base, new_key("calm"))
    with flooder, other:
        statuses = [flooder.get("/v1/jobs", timeout=10).status_code for _ in range(20)]
        assert statuses[:HTTP_LIMIT] == [200] * HTTP_LIMIT and 429 in statuses
        calm = other.get("/v1/jobs", timeout=10)
        assert calm.status_code == 200 and budget(calm)[:2] == (HTTP_LIMIT, HTTP_LIMIT - 1)


@pytest.mark.e2e
def test_the_active_jobs_cap_over_http(limited):
    """Cap 2, no worker: the third job is 429 naming count and cap, with Retry-After; a
    cancel makes room; five submissions at once from a fresh tenant make exactly two jobs."""
    base, new_key = limited
    with ApiSession(base, new_key("capped")) as api:
        first, _ = (api.post("/v1/jobs", json=small_spec(), timeout=10) for _ in range(2))
        refused = api.post("/v1/jobs", json=small_spec(), timeout=10)
        body = refused.json()
        check_problem(refused.status_code, refused.headers["Content-Type"], body, 429, None)
        assert body["type"].endswith("/too-many-active-jobs")
        assert (body["active_jobs"], body["max_active_jobs"]) == (2, HTTP_CAP)
        assert refused.headers["Retry-After"] == "10"  # ACTIVE_JOBS_RETRY_AFTER's default
        time.sleep(2)  # the rate limit's window, out of the way
        cancelled = api.post(f"/v1/jobs/{first.json()['id']}/cancel", timeout=10)
        assert cancelled.status_code == 200
        assert api.post("/v1/jobs", json=small_spec(), timeout=10).status_code == 202

    key = new_key("crowd")
    url, headers = f"{base}/v1/jobs", {"Authorization": f"Bearer {key}"}
    answers = at_once(HTTP_LIMIT, lambda: requests.post(url, json=small_spec(), headers=headers))
    assert sorted(a.status_code for a in answers) == [202] * HTTP_CAP + [429] * (
        HTTP_LIMIT - HTTP_CAP
    )
    assert all(a.json()["type"].endswith("/too-many-active-jobs") for a in answers if not a.ok)
    time.sleep(2)
    with ApiSession(base, key) as api:
        assert len(api.get("/v1/jobs?status=queued", timeout=10).json()["items"]) == HTTP_CAP


def test_a_polled_job_is_read_with_the_count_and_stays_its_tenants(make_app, redis_client):
    """GET /v1/jobs/{id}: the limiter's one call counts the request and reads the job; the
    answer is the job's (or 404 for another tenant, an unknown or a malformed id), the
    headers are the budget's, and a refused poll reads nothing."""
    app = make_app(RATE_LIMIT="4/minute")
    mine, theirs = app.test_client(), client_with(app, ApiKeys(redis_client).create("b")[1])
    job = mine.post("/v1/jobs", json=small_spec()).get_json()
    polled = mine.get(f"/v1/jobs/{job['id']}")
    assert polled.status_code == 200 and polled.get_json() == job | {"status": "queued"}
    assert budget(polled)[:2] == (4, 2)
    assert theirs.get(f"/v1/jobs/{job['id']}").status_code == 404
    assert mine.get("/v1/jobs/" + "0" * 32).status_code == 404
    assert mine.get("/v1/jobs/not-an-id").status_code == 404
    rate_limited(mine.get(f"/v1/jobs/{job['id']}"), "RATE_LIMIT")


def test_the_count_goes_on_when_redis_has_lost_its_scripts(make_app, redis_client):
    """A restarted Redis has no scripts: the count's call loads its own again, counted once."""
    app = make_app(RATE_LIMIT="5/minute")
    client = app.test_client()
    job = client.post("/v1/jobs", json=small_spec()).get_json()
    assert budget(client.get(f"/v1/jobs/{job['id']}"))[1] == 3
    redis_client.script_flush()
    polled = client.get(f"/v1/jobs/{job['id']}")
    assert polled.status_code == 200 and polled.get_json()["id"] == job["id"]
    assert budget(polled)[1] == 2
