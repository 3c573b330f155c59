"""API keys in-process (Flask's test client, the real Redis): who may call /v1, the 401s
(RFC 6750), what needs no key, revocation, AUTH off, the OpenAPI document's security, and
the webhook signing secret."""

import base64
import re
import threading
import time

import pytest

from service.store import LOCAL_TENANT, ApiKeys, JobStore, WebhookSecrets
from service.store import apikeys as apikeys_module
from service.store.queue import connect

from .service_helpers import TENANT, check_problem, client_with, small_spec

CHALLENGE = 'Bearer realm="gradserve"'
INVALID = f'{CHALLENGE}, error="invalid_token"'


@pytest.fixture
def keys(redis_client):
    return ApiKeys(redis_client)


@pytest.fixture
def bare(app):
    """A test client that sends no key unless told to."""
    return client_with(app)


def refused(response, challenge):
    """A 401 problem with the challenge; its detail (the same for every bad key)."""
    body = response.get_json()
    check_problem(response.status_code, response.content_type, body, 401, None)
    assert body["type"].endswith("/unauthorized")
    assert response.headers["WWW-Authenticate"] == challenge
    return body["detail"]


def test_a_key_of_the_right_form_is_long_random_and_stored_only_as_a_hash(keys, redis_client):
    record, key = keys.create("acme")
    assert re.fullmatch(r"gs_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", key)  # 43 chars: 256 bits
    assert key.split("_")[1] == record.id and record.tenant == "acme" and not record.revoked_at
    stored = redis_client.hgetall(keys.keys.api_key(record.id))
    assert key.encode() not in b"".join(k + v for k, v in stored.items())
    assert stored[b"hash"] == apikeys_module.digest(key)
    assert keys.authenticate(key) == "acme"
    assert keys.create("acme")[1] != key


@pytest.mark.parametrize("tenant", ["", "Acme", "a b", "-x", "x" * 65, "a:b", "é"])
def test_a_tenant_name_is_short_and_plain(keys, tenant):
    with pytest.raises(ValueError, match="tenant"):
        keys.create(tenant)


def test_a_key_works_on_every_v1_endpoint_and_names_its_tenant(client, store):
    job = client.post("/v1/jobs", json=small_spec()).get_json()
    assert store.get_job(job["id"], tenant=TENANT)["id"] == job["id"]
    assert client.get("/v1/jobs").status_code == 200


def test_the_scheme_is_case_insensitive(bare, api_key):
    assert bare.get("/v1/jobs", headers={"Authorization": f"bearer {api_key}"}).status_code == 200


def test_no_key_is_401_with_a_bare_challenge(bare):
    for method, path in [("GET", "/v1/jobs"), ("POST", "/v1/graphs"), ("GET", "/v1/nothing")]:
        detail = refused(bare.open(path, method=method), CHALLENGE)
        assert "Authorization: Bearer" in detail


BAD_HEADERS = {
    "bearer-alone": "Bearer",
    "bearer-space": "Bearer ",
    "two-spaces-x": "Bearer  x",
    "10-kB": "Bearer " + "a" * 10_000,
    "non-ascii": "Bearer gs_\u00e9\u00e9\u00e9",
    "unknown-id": "Bearer gs_000000000000_" + "A" * 43,
    "too-short": "Bearer gs_000000000000_" + "A" * 42,
    "bad-alphabet": "Bearer gs_000000000000_" + "A" * 42 + "!",
    "id-upper-case": "Bearer gs_ABCDEF000000_" + "A" * 43,
}


@pytest.mark.parametrize("header", BAD_HEADERS.values(), ids=BAD_HEADERS.keys())
def test_a_bad_bearer_key_is_401_invalid_token(bare, header):
    refused(bare.get("/v1/jobs", headers={"Authorization": header}), INVALID)


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Token abc", "gs_x"])
def test_another_scheme_is_401_with_a_bare_challenge(bare, header):
    refused(bare.get("/v1/jobs", headers={"Authorization": header}), CHALLENGE)


def test_every_bad_key_gets_the_same_answer_after_the_same_work(bare, keys, api_key, monkeypatch):
    """Malformed, unknown, a wrong secret, revoked: one detail, and each was hashed and
    compared in constant time (no early exit that a stopwatch could tell apart)."""
    wrong_secret = api_key[:-1] + ("B" if api_key[-1] != "B" else "C")
    _, revoked = keys.create(TENANT)
    keys.revoke(revoked.split("_")[1])
    compared = []
    original = apikeys_module.hmac.compare_digest
    monkeypatch.setattr(
        apikeys_module.hmac, "compare_digest", lambda a, b: compared.append(1) or original(a, b)
    )
    details = set()
    for key in [*(h.removeprefix("Bearer ") for h in BAD_HEADERS.values()), wrong_secret, revoked]:
        compared.clear()
        details.add(
            refused(bare.get("/v1/jobs", headers={"Authorization": f"Bearer {key}"}), INVALID)
        )
        assert compared == [1], key
    assert len(details) == 1


def test_a_revoked_key_stops_working_at_once_without_the_cache(make_app, keys):
    bare = client_with(make_app(KEY_CACHE_SECONDS=0))
    record, key = keys.create("acme")
    headers = {"Authorization": f"Bearer {key}"}
    assert bare.get("/v1/jobs", headers=headers).status_code == 200
    assert keys.revoke(record.id).revoked_at
    refused(bare.get("/v1/jobs", headers=headers), INVALID)
    assert keys.revoke("0" * 12) is None  # no such key


def test_a_revoked_key_is_refused_within_key_cache_seconds(make_app, keys):
    """A process remembers a valid key for KEY_CACHE_SECONDS: the revoke reaches it within
    that time, never later."""
    ttl = 2.0
    bare = client_with(make_app(KEY_CACHE_SECONDS=ttl))
    record, key = keys.create("acme")
    headers = {"Authorization": f"Bearer {key}"}
    looked_up = time.monotonic()
    assert bare.get("/v1/jobs", headers=headers).status_code == 200
    keys.revoke(record.id)
    while (left := looked_up + ttl - time.monotonic()) > 0.2:
        assert bare.get("/v1/jobs", headers=headers).status_code == 200  # remembered
        time.sleep(min(0.2, left))
    time.sleep(max(0.0, looked_up + ttl - time.monotonic()) + 0.05)
    refused(bare.get("/v1/jobs", headers=headers), INVALID)
    refused(bare.get("/v1/jobs", headers=headers), INVALID)  # and not remembered as valid


def test_the_cache_is_by_the_whole_key_never_its_id_or_tenant(make_app, keys):
    """A remembered key lends nothing: a wrong secret with its id is refused, and keys of
    two tenants each see their own jobs, request after request."""
    app = make_app(KEY_CACHE_SECONDS=60)
    _, mine = keys.create("acme")
    _, theirs = keys.create("globex")
    me, them = client_with(app, mine), client_with(app, theirs)
    job = me.post("/v1/jobs", json=small_spec()).get_json()["id"]
    for _ in range(3):
        assert [j["id"] for j in me.get("/v1/jobs").get_json()["items"]] == [job]
        assert them.get("/v1/jobs").get_json()["items"] == []
        assert them.get(f"/v1/jobs/{job}").status_code == 404
    wrong = mine[:-1] + ("B" if mine[-1] != "B" else "C")
    refused(client_with(app, wrong).get("/v1/jobs"), INVALID)


@pytest.mark.parametrize(
    "path",
    [
        "/healthz",
        "/readyz",
        "/openapi.json",
        "/docs",
        "/redoc",
        "/docs-assets/swagger-ui/swagger-ui.css",
        "/docs-assets/redoc/redoc.standalone.js",
    ],
)
def test_health_the_document_and_the_docs_pages_need_no_key(bare, path):
    assert bare.get(path).status_code == 200


def test_auth_off_serves_every_request_as_tenant_local(make_app, redis_client):
    app = make_app(AUTH="off")
    bare = client_with(app)
    job = bare.post("/v1/jobs", json=small_spec())
    assert job.status_code == 202
    job_id = job.get_json()["id"]
    assert JobStore(redis_client).get_job(job_id, tenant=LOCAL_TENANT)["id"] == job_id
    # a key, even a good one, changes nothing: everyone is `local`
    assert app.test_client().get(f"/v1/jobs/{job_id}").status_code == 200


@pytest.mark.parametrize("value", ["maybe", "", 2])
def test_an_auth_setting_that_is_neither_on_nor_off_is_refused(make_app, value):
    with pytest.raises(ValueError, match="GRADSERVE_AUTH"):
        make_app(AUTH=value)


def test_the_openapi_document_declares_the_bearer_scheme_on_v1_alone(bare):
    document = bare.get("/openapi.json").get_json()
    scheme = document["components"]["securitySchemes"]["apiKey"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    unauthenticated = document["components"]["responses"]["UNAUTHENTICATED"]
    assert "application/problem+json" in unauthenticated["content"]
    assert "WWW-Authenticate" in unauthenticated["headers"]
    v1 = 0
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method == "parameters":  # the path's own, not an operation
                continue
            if path.startswith("/v1/"):
                v1 += 1
                assert operation["security"] == [{"apiKey": []}], path
                assert operation["responses"]["401"] == {
                    "$ref": "#/components/responses/UNAUTHENTICATED"
                }, path
            elif path != "/metrics":  # its own token, not an API key (test_metrics)
                assert "security" not in operation and "401" not in operation["responses"], path
    assert v1 >= 9 and "security" not in document  # each /v1 operation says it itself


def test_the_webhook_secret_is_per_tenant_and_made_once(client, keys, bare):
    first = client.get("/v1/webhooks/secret")
    assert first.status_code == 200
    secret = first.get_json()["secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) >= 24
    assert client.get("/v1/webhooks/secret").get_json()["secret"] == secret
    other = {"Authorization": f"Bearer {keys.create('acme')[1]}"}
    theirs = bare.get("/v1/webhooks/secret", headers=other).get_json()["secret"]
    assert theirs.startswith("whsec_") and theirs != secret
    refused(bare.get("/v1/webhooks/secret"), CHALLENGE)


def test_two_first_calls_at_once_agree_on_one_secret(redis_client, redis_url):
    seen, barrier = [], threading.Barrier(8)

    def ask():
        secrets = WebhookSecrets(connect(redis_url))  # a connection each: truly concurrent
        barrier.wait()
        seen.append(secrets.get("acme"))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 8 and len(set(seen)) == 1
