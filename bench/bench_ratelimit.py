"""What the rate limiter costs a request: the same small requests, through the whole app
(create_app, Flask's test client, an API key, a real redis-server with its append-only
file) with no budgets (RATE_LIMIT and RATE_LIMIT_SUBMIT empty: nothing is counted) and
with them counting (budgets large enough that nothing is refused: the cost of counting, not
of refusing). The two apps take turns, batch by batch, so a busy machine weighs on both.

- GET /v1/jobs/{id}: one budget (RATE_LIMIT), counted and read in one Lua call;
- POST /v1/graphs (the README graph): two budgets (RATE_LIMIT_SUBMIT too), in the same call.
"""

import json
import statistics
import tempfile
import time
from pathlib import Path

from bench.report import Figure, print_figures
from service.api import create_app
from service.stack import redis_server
from service.store import ApiKeys, JobStore
from service.store.queue import connect

GRAPH = json.loads((Path(__file__).parent.parent / "examples" / "micrograd_graph.json").read_text())
BATCH = 100
BATCHES = 20
CONFIGS = {
    "without": {"RATE_LIMIT": "", "RATE_LIMIT_SUBMIT": ""},
    "with": {"RATE_LIMIT": "600000/minute", "RATE_LIMIT_SUBMIT": "600000/minute"},
}


def batch_median(client, method, path, **kwargs):
    times = []
    for _ in range(BATCH):
        started = time.perf_counter()
        response = client.open(path, method=method, **kwargs)
        times.append(time.perf_counter() - started)
        assert response.status_code < 300, response.get_data(as_text=True)
    return statistics.median(times)


def round_trips(client):
    times = []
    for _ in range(BATCH):
        started = time.perf_counter()
        client.ping()
        times.append(time.perf_counter() - started)
    return times


def main():
    with tempfile.TemporaryDirectory() as data_dir:
        port = redis_server.free_port()
        redis = redis_server.start(port, Path(data_dir))  # durable: AOF, as make run's
        url = redis_server.url(port)
        try:
            redis_server.wait_ready(url, redis)
            key = ApiKeys(connect(url)).create("bench")[1]
            job = JobStore(connect(url)).create_job(
                {"steps": 1}, lambda pipe, job_id: None, tenant="bench"
            )[0]
            headers = {"Authorization": f"Bearer {key}"}
            clients = {
                name: create_app({"REDIS_URL": url, **config}).test_client()
                for name, config in CONFIGS.items()
            }
            assert "RateLimit-Limit" in clients["with"].get("/v1/jobs", headers=headers).headers
            requests = {
                "GET /v1/jobs/{id}": ("GET", f"/v1/jobs/{job['id']}", {}),
                "POST /v1/graphs (README graph)": ("POST", "/v1/graphs", {"json": GRAPH}),
            }
            medians = {(name, label): [] for name in CONFIGS for label in requests}
            ping, pings = connect(url), []
            for _ in range(BATCHES):
                pings.append(statistics.median(round_trips(ping)))
                for label, (method, path, kwargs) in requests.items():
                    for name, client in clients.items():
                        medians[name, label].append(
                            batch_median(client, method, path, headers=headers, **kwargs)
                        )
        finally:
            redis.terminate()
            redis.wait(10)
    print(f"rate limiter, in-process, {BATCHES} batches of {BATCH} requests (median of medians):")
    print(f"  one Redis round trip (PING) here: {statistics.median(pings) * 1e6:.0f} us")
    print_figures(
        [
            Figure(
                f"{label}, per request with budgets",
                statistics.median(medians["with", label]),
                statistics.median(medians["without", label]),
                "no budgets",
            )
            for label in requests
        ]
    )


if __name__ == "__main__":
    main()
