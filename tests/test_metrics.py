"""GET /metrics: requests counted by route (URL rule) and status, latency histograms, the
store's gauges from Redis, and who may read them; in-process, then over HTTP from the real
API under gunicorn with two worker processes (counts summed across them) and real workers.
Every answer is read with prometheus_client's own parser."""

import os
import stat
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from service.api import create_app
from service.stack import redis_server
from service.store.metrics import count_webhook_delivery

from .conftest import E2E_DB
from .service_helpers import ID, TENANT, ApiSession, client_with, long_spec, small_spec, wait_until
from .stacks import own_stack, ready

TOKEN = "metrics-token-0123456789abcdef"
TERMINAL = ("succeeded", "failed", "cancelled")


def samples(text):
    """{(sample name, ((label, value), ...)): value} of an exposition."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(parsed, name, **labels):
    return parsed.get((name, tuple(sorted(labels.items()))), 0.0)


def requests_of(parsed, route, status="200", method="GET"):
    labels = {"route": route, "method": method, "status": status}
    return value(parsed, "gradserve_http_requests_total", **labels)


def scrape(client_or_session, **kwargs):
    response = client_or_session.get("/metrics", **kwargs)
    assert response.status_code == 200, response.text
    text = response.text if hasattr(response, "text") else response.get_data(as_text=True)
    return samples(text)


# -- in-process -----------------------------------------------------------------------------


def test_requests_are_counted_by_url_rule_method_and_status(client):
    before = scrape(client)
    for _ in range(3):
        assert client.get(f"/v1/jobs/{ID}").status_code == 404  # well formed, never issued
    assert client.get("/v1/jobs/" + "f" * 32).status_code == 404
    assert client.get("/no/such/path").status_code == 404
    assert client.open("/healthz", method="BREW").status_code == 405
    after = scrape(client)
    rule = "/v1/jobs/<job_id>"
    assert requests_of(after, rule, "404") - requests_of(before, rule, "404") == 4
    assert requests_of(after, "unmatched", "404") - requests_of(before, "unmatched", "404") == 1
    assert requests_of(after, "unmatched", "405", "other") == 1  # no rule: the method's 405
    routes = {dict(labels)["route"] for name, labels in after if "route" in dict(labels)}
    assert not any(ID in route or "ffff" in route for route in routes)  # never a raw path


def test_latency_histograms_have_every_bucket_per_route(client):
    for _ in range(5):
        client.get("/healthz")
    parsed = scrape(client)
    name = "gradserve_http_request_duration_seconds"
    labels = {"route": "/healthz", "method": "GET"}
    buckets = {
        dict(lab)["le"]: v
        for (sample, lab), v in parsed.items()
        if sample == f"{name}_bucket" and {k: w for k, w in lab if k != "le"} == labels
    }
    assert {"0.001", "0.01", "0.1", "1.0", "60.0", "+Inf"} <= set(buckets)
    counts = [buckets[le] for le in sorted(buckets, key=lambda le: float(le))]
    assert counts == sorted(counts)  # cumulative
    assert buckets["+Inf"] == value(parsed, f"{name}_count", **labels) == 5
    assert 0 < value(parsed, f"{name}_sum", **labels) < 5


def test_store_gauges_reflect_a_submitted_job_and_webhook_deliveries(client, redis_client):
    parsed = scrape(client)
    assert value(parsed, "gradserve_redis_up") == 1
    assert value(parsed, "gradserve_queue_depth", queue="gradserve") == 0
    assert value(parsed, "gradserve_jobs", status="queued") == 0
    assert value(parsed, "gradserve_workers") == 0  # no worker in this test
    assert client.post("/v1/jobs", json=small_spec()).status_code == 202
    for outcome in ("delivered", "delivered", "retrying"):
        count_webhook_delivery(redis_client, outcome)
    parsed = scrape(client)
    assert value(parsed, "gradserve_queue_depth", queue="gradserve") == 1
    assert value(parsed, "gradserve_jobs", status="queued") == 1
    assert value(parsed, "gradserve_jobs", status="running") == 0
    deliveries = "gradserve_webhook_deliveries_total"
    assert value(parsed, deliveries, outcome="delivered") == 2
    assert value(parsed, deliveries, outcome="retrying") == 1
    assert value(parsed, deliveries, outcome="failed") == 0
    with pytest.raises(ValueError, match="outcome"):
        count_webhook_delivery(redis_client, "tenant-x")  # labels stay a fixed few


def test_no_tenant_or_key_id_in_any_label(client, api_key):
    client.post("/v1/jobs", json=small_spec())
    client.get("/v1/jobs")
    text = client.get("/metrics").get_data(as_text=True)
    key_id = api_key.split("_")[1]
    assert TENANT not in text and key_id not in text and api_key not in text


def test_metrics_answer_with_redis_down(redis_port):
    port = redis_server.free_port()  # nothing listens there
    app = create_app({"TESTING": True, "REDIS_URL": redis_server.url(port)})
    response = app.test_client().get("/metrics")
    assert response.status_code == 200
    parsed = samples(response.get_data(as_text=True))
    assert value(parsed, "gradserve_redis_up") == 0
    assert not any(name == "gradserve_jobs" for name, _ in parsed)
    assert requests_of(parsed, "/metrics") >= 0  # the request metrics are still there


LOOPBACK = ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"]
ELSEWHERE = ["10.0.0.7", "192.0.2.1", "::ffff:10.0.0.7", "2001:db8::1", ""]


@pytest.mark.parametrize("address", LOOPBACK + ELSEWHERE)
def test_by_default_only_loopback_peers_read_the_metrics(make_app, address):
    client = client_with(make_app())
    status = client.get("/metrics", environ_base={"REMOTE_ADDR": address}).status_code
    assert status == (200 if address in LOOPBACK else 404)


@pytest.mark.parametrize(
    "mode, address, header, status",
    [
        ("loopback", "10.0.0.7", f"Bearer {TOKEN}", 200),  # the token opens it from anywhere
        ("loopback", "10.0.0.7", "Bearer wrong-token-0123456789", 401),
        ("loopback", "10.0.0.7", None, 401),
        ("token", "127.0.0.1", None, 401),  # behind a local proxy: loopback is not enough
        ("token", "127.0.0.1", f"Bearer {TOKEN}", 200),
        ("token", "10.0.0.7", f"bearer {TOKEN}", 200),
        ("open", "10.0.0.7", None, 200),
        ("off", "127.0.0.1", f"Bearer {TOKEN}", 404),
    ],
)
def test_metrics_access_per_setting(make_app, mode, address, header, status):
    client = client_with(make_app(METRICS=mode, METRICS_TOKEN=TOKEN))
    headers = {"Authorization": header} if header else {}
    response = client.get("/metrics", headers=headers, environ_base={"REMOTE_ADDR": address})
    assert response.status_code == status
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer ")
        assert response.json["type"].endswith("/unauthorized")
        assert response.content_type == "application/problem+json"
    if status == 404:
        assert response.content_type == "application/problem+json"


@pytest.mark.parametrize(
    "settings, named",
    [
        ({"METRICS": "public"}, "GRADSERVE_METRICS"),
        ({"METRICS": "token"}, "GRADSERVE_METRICS_TOKEN"),
        ({"METRICS_TOKEN": "short"}, "at least 16"),
    ],
)
def test_a_bad_metrics_setting_is_refused_at_start(make_app, settings, named):
    with pytest.raises(ValueError, match=named):
        make_app(**settings)


def test_the_openapi_document_describes_metrics_unless_off(make_app):
    document = make_app().test_client().get("/openapi.json").get_json()
    operation = document["paths"]["/metrics"]["get"]
    assert "text/plain" in operation["responses"]["200"]["content"]
    assert {"401", "404"} <= set(operation["responses"])
    assert {} in operation["security"] and {"metricsToken": []} in operation["security"]
    assert document["components"]["securitySchemes"]["metricsToken"]["scheme"] == "bearer"
    off = make_app(METRICS="off").test_client().get("/openapi.json").get_json()
    assert "/metrics" not in off["paths"]


def test_an_empty_token_is_no_token(make_app):
    client = client_with(make_app(METRICS_TOKEN=""))  # docker-compose's default
    response = client.get("/metrics", environ_base={"REMOTE_ADDR": "10.0.0.7"})
    assert response.status_code == 404


# -- over HTTP: gunicorn with two worker processes, real workers -----------------------------


def counting_pids(directory):
    """The gunicorn worker processes that wrote counters to the multiprocess directory."""
    return {path.stem.rpartition("_")[2] for path in directory.glob("counter_*.db")}


def test_requests_are_summed_over_the_gunicorn_processes(stack, stack_dir):
    before = requests_of(_get(stack), "/healthz")
    made = 0

    def hit(_):
        with requests.Session() as fresh:  # a new connection: any process may accept it
            assert fresh.get(f"{stack}/healthz", timeout=10).status_code == 200

    with ThreadPoolExecutor(8) as pool:
        while True:
            list(pool.map(hit, range(40)))
            made += 40
            if len(counting_pids(stack_dir / "metrics")) >= 2 or made >= 400:
                break
    assert len(counting_pids(stack_dir / "metrics")) >= 2  # both processes counted some
    after = _get(stack)
    assert requests_of(after, "/healthz") - before == made


def _get(base, **kwargs):
    response = requests.get(f"{base}/metrics", timeout=10, **kwargs)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    return samples(response.text)


def test_histograms_and_store_gauges_over_http(stack, api):
    before = _get(stack)
    job_id = api.post("/v1/jobs", json=small_spec()).json()["id"]
    wait_until(lambda: api.get(f"/v1/jobs/{job_id}").json()["status"] in TERMINAL, timeout=60)
    after = _get(stack)
    assert value(after, "gradserve_redis_up") == 1
    assert value(after, "gradserve_workers") == 2  # the stack's two rq workers
    succeeded = value(after, "gradserve_jobs", status="succeeded")
    assert succeeded - value(before, "gradserve_jobs", status="succeeded") == 1
    rule, name = "/v1/jobs/<job_id>", "gradserve_http_request_duration_seconds"
    polls = requests_of(after, rule) - requests_of(before, rule)
    assert polls >= 1
    labels = {"route": rule, "method": "GET"}
    timed = value(after, f"{name}_count", **labels) - value(before, f"{name}_count", **labels)
    assert timed == polls
    inf = {**labels, "le": "+Inf"}
    assert value(after, f"{name}_bucket", **inf) == value(after, f"{name}_count", **labels)
    assert value(after, f"{name}_bucket", **labels, le="0.001") <= value(
        after, f"{name}_bucket", **labels, le="0.1"
    )
    assert requests_of(after, "/v1/jobs", "202", "POST") >= 1


@pytest.fixture(scope="module")
def token_stack(redis_port, tmp_path_factory):
    """A stack of its own (its own database) with GRADSERVE_METRICS=token, one rq worker and
    two gunicorn processes; its base URL and data directory."""
    directory = tmp_path_factory.mktemp("metrics-stack")
    settings = {
        "GRADSERVE_METRICS": "token",
        "GRADSERVE_METRICS_TOKEN": TOKEN,
        "PROMETHEUS_MULTIPROC_DIR": None,
    }
    with own_stack(redis_port, E2E_DB + 2, directory, settings, workers=1) as base:
        yield base, directory


def test_token_setting_over_http(token_stack):
    base, _ = token_stack
    refused = requests.get(f"{base}/metrics", timeout=10)  # from loopback, without the token
    assert refused.status_code == 401
    assert refused.headers["Content-Type"] == "application/problem+json"
    wrong = {"Authorization": "Bearer " + "x" * len(TOKEN)}
    assert requests.get(f"{base}/metrics", headers=wrong, timeout=10).status_code == 401
    parsed = _get(base, headers={"Authorization": f"Bearer {TOKEN}"})
    assert value(parsed, "gradserve_redis_up") == 1


def test_queue_depth_jobs_and_workers_follow_real_jobs(token_stack):
    base, directory = token_stack
    api = ApiSession(base, (directory / "api-key").read_text().strip())
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert value(_get(base, headers=auth), "gradserve_workers") == 1
    running = api.post("/v1/jobs", json=long_spec()).json()["id"]
    wait_until(lambda: api.get(f"/v1/jobs/{running}").json()["status"] == "running")
    queued = api.post("/v1/jobs", json=small_spec()).json()["id"]  # the one worker is busy
    try:
        parsed = _get(base, headers=auth)
        assert value(parsed, "gradserve_queue_depth", queue="gradserve") == 1
        assert value(parsed, "gradserve_jobs", status="running") == 1
        assert value(parsed, "gradserve_jobs", status="queued") == 1
        assert value(parsed, "gradserve_workers") == 1
    finally:
        for job_id in (queued, running):
            api.post(f"/v1/jobs/{job_id}/cancel")

    # The cancelled job's queue entry waits until the freed worker takes it and drops it.
    def drained():
        parsed = _get(base, headers=auth)
        return value(parsed, "gradserve_queue_depth", queue="gradserve") == 0

    wait_until(drained, timeout=30)
    parsed = _get(base, headers=auth)
    assert value(parsed, "gradserve_jobs", status="cancelled") == 2
    assert value(parsed, "gradserve_jobs", status="queued") == 0
    assert value(parsed, "gradserve_jobs", status="running") == 0
    assert (directory / "metrics").is_dir()  # the stack's own multiprocess directory


@pytest.fixture
def gunicorn(redis_port, tmp_path):
    """Start gunicorn with its config as the Dockerfile does (no stack around it), with
    `env` added; the base URL. Stopped (SIGTERM) by the test or at its end."""
    started = []

    def start(**env):
        port = redis_server.free_port()
        full = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        full.update(
            REDIS_URL=redis_server.url(redis_port, E2E_DB + 3),
            PORT=str(port),
            WEB_CONCURRENCY="2",
            GUNICORN_ACCESS_LOG="",
            **env,
        )
        command = [sys.executable, "-m", "gunicorn", "-c", "python:service.api.gunicorn_conf"]
        with open(tmp_path / "gunicorn.log", "a") as log:
            process = subprocess.Popen(command, env=full, stdout=log, stderr=log)
        started.append(process)
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: process.poll() is not None or ready(base), timeout=30)
        assert process.poll() is None, (tmp_path / "gunicorn.log").read_text()
        return base, process

    yield start
    for process in started:
        process.terminate()
        process.wait(30)


def test_gunicorn_alone_counts_in_a_private_directory_it_removes(gunicorn, tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    base, process = gunicorn(TMPDIR=str(temp))
    (private,) = temp.glob("gradserve-metrics-*")  # made by gunicorn's master
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    for _ in range(5):
        requests.get(f"{base}/healthz", timeout=10)
    assert requests_of(_get(base), "/healthz") == 5
    assert list(private.glob("counter_*.db"))
    process.terminate()
    assert process.wait(30) == 0
    assert not private.exists()


def test_gunicorn_empties_the_given_directory_at_start(gunicorn, tmp_path):
    given = tmp_path / "metrics"
    given.mkdir()
    (given / "counter_1.db").write_bytes(b"left by a run before: not a metrics file")
    (given / "notes.txt").write_text("not prometheus_client's: kept")
    base, _ = gunicorn(PROMETHEUS_MULTIPROC_DIR=str(given))
    parsed = _get(base)  # would fail on the stale file
    assert requests_of(parsed, "/metrics") == 0 and value(parsed, "gradserve_redis_up") == 1
    assert not (given / "counter_1.db").exists() and (given / "notes.txt").exists()


def test_an_exited_workers_counts_are_folded_into_archives_and_its_files_go(gunicorn, tmp_path):
    given = tmp_path / "metrics"
    recycled = {"GUNICORN_CMD_ARGS": "--max-requests 10 --max-requests-jitter 0"}
    base, _ = gunicorn(PROMETHEUS_MULTIPROC_DIR=str(given), **recycled)
    made, archives = 0, [given / "counter_archive.db", given / "histogram_archive.db"]
    for _ in range(3):  # a worker exits within a second or so of its 10th request
        for _ in range(30):
            assert requests.get(f"{base}/healthz", timeout=10).status_code == 200
        made += 30
        wait_until(lambda: all(path.exists() for path in archives), timeout=10)
        time.sleep(1.5)
    parsed = _get(base)
    timed = {"route": "/healthz", "method": "GET"}
    assert requests_of(parsed, "/healthz") == made  # not one lost, none counted twice
    assert value(parsed, "gradserve_http_request_duration_seconds_count", **timed) == made
    assert (
        value(parsed, "gradserve_http_request_duration_seconds_bucket", le="+Inf", **timed) == made
    )
    files = {path.name for path in given.glob("*.db")}
    assert len(files) <= 2 + 2 * 2, files  # the archives, and the 2 live workers' two each


def test_gunicorn_refuses_a_bad_metrics_setting(tmp_path, redis_port):
    env = {**os.environ, "GRADSERVE_METRICS": "token", "PORT": str(redis_server.free_port())}
    command = [sys.executable, "-m", "gunicorn", "-c", "python:service.api.gunicorn_conf"]
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode != 0 and "GRADSERVE_METRICS_TOKEN" in run.stderr
