"""gradserve_client against the real API under gunicorn with real workers (the session
stack), and against a stack of its own with tiny limits for the 429s and the retries."""

import threading
import time

import pytest
from gradserve_client import (
    APIConnectionError,
    APIError,
    Client,
    Conflict,
    GradserveError,
    InvalidRequest,
    NotFound,
    RateLimited,
    RetryPolicy,
    Unauthorized,
    WaitTimeout,
)

from service.stack import redis_server
from service.store import ApiKeys
from service.store.queue import connect

from .service_helpers import ID, MICROGRAD_FIGURES, MICROGRAD_GRAPH, small_spec
from .stacks import own_stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def key(api):
    return api.headers["Authorization"].removeprefix("Bearer ")


@pytest.fixture
def gs(stack, key):
    with Client(stack, key, timeout=30) as client:
        yield client


def test_a_job_from_submit_to_predict(gs):
    job = gs.jobs.create(small_spec(loss="bce"))
    assert job["status"] == "queued" and job["spec"]["loss"] == "bce"
    done = gs.jobs.wait(job["id"], timeout=60)
    assert done["status"] == "succeeded" and done["progress"] == {"step": 5, "steps": 5}
    history = gs.jobs.history(job["id"])
    assert history["step"] == [0, 1, 2, 3, 4] and len(history["loss"]) == 5
    assert gs.jobs.history(job["id"], limit=2) == history  # three pages, merged
    assert gs.jobs.history(job["id"], since=3)["step"] == [3, 4]
    model = gs.models.get(done["model_id"])
    assert model["job_id"] == job["id"] and model["loss"] == "bce"
    predicted = gs.models.predict(done["model_id"], [(1.0, -0.5), (0.0, 0.0)])
    assert len(predicted["y"]) == 2
    assert all(0 < p < 1 for p in predicted["probabilities"])  # bce: a number per row
    assert job["id"] in {j["id"] for j in gs.jobs.list_all(status="succeeded")}
    gs.jobs.delete(job["id"])
    with pytest.raises(NotFound):
        gs.jobs.get(job["id"])
    gs.models.delete(done["model_id"])
    with pytest.raises(NotFound):
        gs.models.predict(done["model_id"], [[0.0, 0.0]])


def test_list_pages_through_every_job_once(gs):
    made = {gs.jobs.create(small_spec())["id"] for _ in range(3)}
    page = gs.jobs.list(limit=1)
    assert len(page["items"]) == 1 and page["next_cursor"]
    every = [job["id"] for job in gs.jobs.list_all(limit=2)]
    assert made <= set(every) and len(every) == len(set(every))


def test_inline_data_graphs_secret_and_probes(gs):
    data = {"x": [[0.0, 1.0], [1.0, 0.0]], "y": [1, -1]}
    job = gs.jobs.create({"data": data, "steps": 2})
    assert gs.jobs.data(job["id"]) == data
    evaluated = gs.graphs.evaluate(MICROGRAD_GRAPH)
    assert evaluated["result"]["value"] == pytest.approx(MICROGRAD_FIGURES["value"], abs=1e-4)
    assert gs.graphs.get(evaluated["id"])["status"] == "succeeded"
    assert gs.graphs.dot(evaluated["id"]).startswith("digraph")
    queued = gs.graphs.evaluate(MICROGRAD_GRAPH, respond_async=True)
    assert queued["status"] == "queued"
    nodes = len(MICROGRAD_GRAPH["nodes"])
    summary = {"output": "g", "value": evaluated["result"]["value"], "nodes": nodes}
    assert gs.graphs.evaluate(MICROGRAD_GRAPH, minimal=True)["result"] == summary
    assert gs.graphs.get(evaluated["id"], minimal=True)["result"] == summary
    done = gs.graphs.wait(queued["id"], timeout=60)
    assert done["status"] == "succeeded" and done["result"]["grads"] == evaluated["result"]["grads"]
    assert gs.graphs.wait(queued["id"], timeout=60, minimal=True)["result"] == summary
    assert gs.webhooks.secret().startswith("whsec_")
    assert gs.health() == {"status": "ok"} and gs.ready() == {"status": "ready"}


def test_the_same_idempotency_key_gives_the_same_job(gs):
    first = gs.jobs.create(small_spec(), idempotency_key="client-test-once")
    again = gs.jobs.create(small_spec(), idempotency_key="client-test-once")
    assert again["id"] == first["id"]
    assert gs.jobs.create(small_spec())["id"] != gs.jobs.create(small_spec())["id"]


def test_each_status_has_its_exception_with_the_problem(gs, stack):
    with Client(stack, "gs_not_a_key") as stranger, pytest.raises(Unauthorized) as caught:
        stranger.jobs.list()
    assert caught.value.status == 401 and caught.value.problem["status"] == 401
    assert caught.value.response.headers["WWW-Authenticate"].startswith("Bearer")

    with pytest.raises(NotFound) as caught:
        gs.jobs.get(ID)
    assert ID in caught.value.detail and caught.value.title

    with pytest.raises(InvalidRequest) as caught:
        gs.jobs.create({"steps": 0, "loss": "nope"})
    error = caught.value
    assert error.status == 422 and error.type.endswith("/invalid-input")
    assert {e["path"] for e in error.errors} == {"steps", "loss"}
    assert isinstance(error, APIError) and isinstance(error, GradserveError)

    with pytest.raises(InvalidRequest) as caught:
        gs.graphs.evaluate({"nodes": [{"id": "a", "op": "add", "inputs": ["q", "r"]}]})
    assert any(e["path"].startswith("nodes/0/inputs") for e in caught.value.errors)

    job = gs.jobs.wait(gs.jobs.create(small_spec())["id"], timeout=60)
    with pytest.raises(Conflict) as caught:
        gs.jobs.cancel(job["id"])
    assert caught.value.status == 409 and job["status"] in caught.value.detail


def test_an_unreachable_api_is_a_connection_error():
    port = redis_server.free_port()  # nothing listens there
    with Client(f"http://127.0.0.1:{port}", "k", timeout=2) as nobody:
        started = time.monotonic()
        with pytest.raises(APIConnectionError, match="refused"):
            nobody.health()
        assert time.monotonic() - started < 5  # two quick retries, then it says so


def test_wait_times_out_with_the_last_state_then_sees_the_cancel(gs):
    job = gs.jobs.create(small_spec(steps=1_000_000))
    answers = recorded(gs)
    started = time.monotonic()
    with pytest.raises(WaitTimeout) as caught:
        gs.jobs.wait(job["id"], timeout=1.5)
    assert 1.4 < time.monotonic() - started < 5
    assert len(answers) < 10  # held for 1 s, then a few polls in the last half second
    assert caught.value.job["status"] in ("queued", "running")
    threading.Timer(0.5, gs.jobs.cancel, [job["id"]]).start()
    assert gs.jobs.wait(job["id"], timeout=30)["status"] == "cancelled"


# -- a stack with tiny limits and no worker: 429s, Retry-After, retries --------------------

LIMITED_DB = 3  # its own database: the session stack uses 1, test_ratelimit's stack 2
LIMIT = 4  # requests per key in 2 seconds


@pytest.fixture(scope="module")
def limited(redis_port, tmp_path_factory):
    """gunicorn with a rate limit of LIMIT per 2 s, at most 1 active job per tenant (a 429
    saying to come back in 1 s), no worker; its URL and a maker of keys."""
    settings = {
        "GRADSERVE_RATE_LIMIT": f"{LIMIT}/2 seconds",
        "GRADSERVE_MAX_ACTIVE_JOBS": "1",
        "GRADSERVE_ACTIVE_JOBS_RETRY_AFTER": "1",
    }
    keys = ApiKeys(connect(redis_server.url(redis_port, LIMITED_DB)))
    directory = tmp_path_factory.mktemp("client-limited")
    with own_stack(redis_port, LIMITED_DB, directory, settings, processes=1) as base:
        yield base, lambda tenant: keys.create(tenant)[1]


def recorded(client):
    """The (time, method, status, headers) of every answer `client` gets from now on."""
    answers = []

    def record(response, *args, **kwargs):
        request = response.request
        answers.append((time.monotonic(), request.method, response.status_code, response))

    client._transport.session.hooks["response"].append(record)
    return answers


def test_over_the_limit_is_rate_limited_with_retry_after(limited):
    base, new_key = limited
    with Client(base, new_key("impatient"), retry=RetryPolicy(attempts=0)) as gs:
        for _ in range(LIMIT):
            gs.jobs.list()
        with pytest.raises(RateLimited) as caught:
            gs.jobs.list()
    assert caught.value.status == 429 and caught.value.type.endswith("/rate-limited")
    assert 0 < caught.value.retry_after <= 2


def test_a_get_is_retried_after_retry_after_and_succeeds(limited):
    base, new_key = limited
    with Client(base, new_key("patient")) as gs:
        answers = recorded(gs)
        for _ in range(LIMIT):
            gs.jobs.list()
        assert gs.jobs.list()["items"] == []  # over the limit, yet it comes back with a page
    statuses = [status for _, _, status, _ in answers]
    assert statuses[:LIMIT] == [200] * LIMIT and statuses[-1] == 200 and 429 in statuses
    first_refusal = statuses.index(429)
    asked_to_wait = float(answers[first_refusal][3].headers["Retry-After"])
    assert answers[first_refusal + 1][0] - answers[first_refusal][0] >= asked_to_wait - 0.05


def test_retries_are_bounded_in_count_and_in_time(limited):
    base, new_key = limited
    with Client(base, new_key("bounded"), retry=RetryPolicy(attempts=1)) as gs:
        answers = recorded(gs)
        gs.jobs.create(small_spec())  # the tenant's one active job (no worker runs it)
        with pytest.raises(RateLimited) as caught:
            gs.jobs.create(small_spec())
        assert caught.value.type.endswith("/too-many-active-jobs")
        assert [s for _, m, s, _ in answers if m == "POST"] == [202, 429, 429]  # 1 retry
    with Client(base, new_key("hurried"), retry=RetryPolicy(max_wait=0.5)) as gs:
        answers = recorded(gs)
        gs.jobs.create(small_spec())
        with pytest.raises(RateLimited):  # Retry-After 1 s is past the 0.5 s allowed
            gs.jobs.create(small_spec())
        assert [s for _, m, s, _ in answers if m == "POST"] == [202, 429]


def test_a_submission_is_retried_with_one_idempotency_key_and_makes_one_job(limited):
    base, new_key = limited
    with Client(base, new_key("queue")) as gs:
        answers = recorded(gs)
        first = gs.jobs.create(small_spec())
        threading.Timer(0.3, gs.jobs.cancel, [first["id"]]).start()  # makes room
        second = gs.jobs.create(small_spec())  # 429 (one active job), retried after 1 s
        posts = [r for _, m, _, r in answers if m == "POST" and r.url.endswith("/v1/jobs")]
        assert [r.status_code for r in posts][-1] == 202 and 429 in [r.status_code for r in posts]
        keys = {r.request.headers["Idempotency-Key"] for r in posts[1:]}
        assert len(keys) == 1 and posts[0].request.headers["Idempotency-Key"] not in keys
        time.sleep(2)  # the rate limit's window, out of the way
        assert {j["id"] for j in gs.jobs.list_all()} == {first["id"], second["id"]}


def test_other_posts_are_never_retried(limited):
    base, new_key = limited
    with Client(base, new_key("graphs")) as gs:
        answers = recorded(gs)
        for _ in range(LIMIT):
            gs.graphs.evaluate(MICROGRAD_GRAPH)
        started = time.monotonic()
        with pytest.raises(RateLimited):
            gs.graphs.evaluate(MICROGRAD_GRAPH)
        assert time.monotonic() - started < 0.5 and len(answers) == LIMIT + 1


def test_stream_follows_a_job_to_its_end_each_step_once(gs):
    job = gs.jobs.create(small_spec(steps=300))
    events = list(gs.jobs.stream(job["id"]))
    steps = [s for e in events if e.event == "progress" for s in e.data["step"]]
    assert steps == list(range(300))
    assert events[0].event == "status" and events[-1].event == "status"
    assert events[-1].data["status"] == "succeeded" and events[-1].data["id"] == job["id"]
    progress = [e for e in events if e.event == "progress"]
    assert all(e.id == str(e.data["step"][-1]) for e in progress)
    history = gs.jobs.history(job["id"])
    assert [s for e in progress for s in e.data["loss"]] == history["loss"]


def test_stream_resumes_after_a_given_step(gs):
    job = gs.jobs.wait(gs.jobs.create(small_spec(steps=20))["id"], timeout=60)
    events = list(gs.jobs.stream(job["id"], last_event_id=14))
    assert [s for e in events if e.event == "progress" for s in e.data["step"]] == [
        15,
        16,
        17,
        18,
        19,
    ]
    assert events[-1].data["status"] == "succeeded"


def test_wait_is_held_by_the_server_not_polled(gs):
    answers = recorded(gs)
    job = gs.jobs.create(small_spec(steps=3000))
    done = gs.jobs.wait(job["id"], timeout=120)
    assert done["status"] == "succeeded"
    gets = [r for _, m, _, r in answers if m == "GET"]
    assert all(r.request.headers["Prefer"].startswith("wait=") for r in gets)
    assert gets[-1].headers["Preference-Applied"].startswith("wait=")
    assert len(gets) <= 3  # one held request, not a poll every few milliseconds


def test_list_filters_by_metadata_and_status(gs):
    tagged = gs.jobs.create(small_spec(metadata={"team": "vision", "run": "client-filter"}))
    gs.jobs.create(small_spec(metadata={"team": "audio", "run": "client-filter"}))
    found = list(gs.jobs.list_all(metadata={"team": "vision", "run": "client-filter"}))
    assert [job["id"] for job in found] == [tagged["id"]]
    assert found[0]["metadata"] == {"team": "vision", "run": "client-filter"}
    gs.jobs.wait(tagged["id"], timeout=60)
    both = list(gs.jobs.list_all(metadata={"run": "client-filter"}, status="succeeded", limit=1))
    assert tagged["id"] in {job["id"] for job in both}
    assert all(job["status"] == "succeeded" for job in both)
