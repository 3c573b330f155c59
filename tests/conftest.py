"""Fixtures: a real redis-server (the bundled binary) for the session, flushed between
tests; the app from create_app; and, for the end-to-end tests, the real stack (gunicorn
with its config, two rq worker processes) speaking HTTP."""

import os

import pytest
from hypothesis import settings

from service.api import create_app
from service.stack import redis_server
from service.store import ApiKeys, JobStore
from service.store.queue import connect

from .service_helpers import TENANT, ApiSession, keyed_client
from .stacks import own_stack

# CI replays the same examples every run (a red run does not land; a flake would block
# it); local runs draw new ones and keep exploring. A failure prints its reproduction.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

E2E_DB = 1  # the end-to-end stack's database: never flushed under its running workers
GENEROUS_LIMITS = {
    "RATE_LIMIT": "100000/minute",
    "RATE_LIMIT_SUBMIT": "100000/minute",
    "RATE_LIMIT_UNAUTHENTICATED": "100000/minute",
    "MAX_ACTIVE_JOBS": 100_000,
}
"""Limits no test reaches by chance (a job's status polled 50 times a second, a hundred jobs
queued in-process with no worker); test_ratelimit sets small ones of its own."""
RELIABILITY_FIGURES: list[str] = []
"""Lines test_reliability measures (seconds from each fault to the job running again, the
stored steps computed again), printed at the end of the run."""
CONSOLE_FIGURES: list[str] = []
"""What test_console measures (page weights, the curve's delay) and where its screenshots
are, printed at the end of the run."""


def pytest_terminal_summary(terminalreporter):
    if RELIABILITY_FIGURES:
        terminalreporter.section("reliability figures")
        for line in RELIABILITY_FIGURES:
            terminalreporter.write_line(line)
    if CONSOLE_FIGURES:
        terminalreporter.section("console figures")
        for line in CONSOLE_FIGURES:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session", autouse=True)
def generous_limits():
    """Every app, stack and example the tests start keeps the rate limiter and the cap on
    active jobs on, with GENEROUS_LIMITS from its environment."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in GENEROUS_LIMITS.items():
            patch.setenv(f"GRADSERVE_{name}", str(value))
        yield


@pytest.fixture(scope="session")
def redis_port(tmp_path_factory):
    port = redis_server.free_port()
    process = redis_server.start(port, tmp_path_factory.mktemp("redis"), durable=False)
    redis_server.wait_ready(redis_server.url(port), process)
    yield port
    process.terminate()
    process.wait(10)


@pytest.fixture
def redis_url(redis_port):
    return redis_server.url(redis_port)


@pytest.fixture
def redis_client(redis_url):
    client = connect(redis_url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def store(redis_client):
    return JobStore(redis_client)


@pytest.fixture
def api_key(redis_client):
    """A key of tenant TENANT in the test Redis."""
    return ApiKeys(redis_client).create(TENANT)[1]


@pytest.fixture
def make_app(redis_client, redis_url, api_key):
    """create_app on the test Redis; its test clients send `api_key`."""

    def make(**config):
        app = create_app({"TESTING": True, "REDIS_URL": redis_url, **config})
        app.test_client_class = keyed_client(api_key)
        return app

    return make


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def worker_env(monkeypatch, redis_url):
    """Job functions run in this process read REDIS_URL, as a worker's do."""
    monkeypatch.setenv("REDIS_URL", redis_url)


@pytest.fixture(scope="session")
def stack_dir(tmp_path_factory):
    """The end-to-end stack's data directory (its log, and its key of tenant `local`)."""
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
def stack(redis_port, stack_dir):
    """gunicorn (service/gunicorn_conf.py) and two `python -m service.worker` processes,
    supervised by service.stack.Stack as `make run` does; its base URL."""
    with own_stack(redis_port, E2E_DB, stack_dir, workers=2) as base:
        yield base


@pytest.fixture(scope="session")
def api(stack, stack_dir):
    """A session on the stack with the key the stack made for tenant `local`, as `make
    run` does (in its data directory's `api-key`)."""
    with ApiSession(stack, (stack_dir / "api-key").read_text().strip()) as session:
        yield session
