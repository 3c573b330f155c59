"""The service over HTTP, on a stack like `make run`'s (bundled Redis with its append-only
file, gunicorn with its config, two rq workers), against the engine in-process:

- micrograd's demo as a job: submit -> reading `succeeded` (micrograd itself: 158 s);
- the README graph: POST latency percentiles;
- the largest graph the defaults accept (500,000 nodes): accept, and evaluated.
"""

import json
import statistics
import time
from pathlib import Path

import requests

from bench import servers
from bench.report import Figure, print_figures
from bench.timing import best_of
from engine import evaluate
from engine.train import train
from service import settings

GRAPH = json.loads((Path(__file__).parent.parent / "examples" / "micrograd_graph.json").read_text())
MICROGRAD_DEMO_SECONDS = 158  # micrograd's own demo notebook, 100 steps, in-process
DEMO_RUNS = 10
GRAPH_REQUESTS = 200
POLL = 0.002


def largest_graph(nodes=settings.MAX_GRAPH_NODES):
    """`nodes` nodes: two inputs, then a chain mixing every kind of op."""
    doc = [{"id": "x", "op": "input", "value": 0.5}, {"id": "y", "op": "input", "value": 0.25}]
    ops = ["tanh", "add", "mul", "sigmoid"]
    for i in range(nodes - 2):
        prev = doc[-1]["id"]
        op = ops[i % 4]
        inputs = [prev] if op in ("tanh", "sigmoid") else [prev, "y"]
        doc.append({"id": f"n{i}", "op": op, "inputs": inputs})
    return {"format": "graph/1", "nodes": doc}


def wait_for(url, done):
    while True:
        body = requests.get(url, timeout=60).json()
        if done(body):
            return body
        time.sleep(POLL)


def demo_job_seconds(base):
    times = []
    for _ in range(DEMO_RUNS):
        started = time.perf_counter()
        response = requests.post(f"{base}/v1/jobs", json={}, timeout=30)
        job = wait_for(
            base + response.headers["Location"],
            lambda j: j["status"] in ("succeeded", "failed", "cancelled"),
        )
        times.append(time.perf_counter() - started)
        assert job["status"] == "succeeded", job
    return times


def graph_latencies(base):
    latencies = []
    with requests.Session() as http:
        for _ in range(GRAPH_REQUESTS):
            started = time.perf_counter()
            response = http.post(f"{base}/v1/graphs", json=GRAPH, timeout=30)
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 201
    return sorted(latencies)


def large_graph_seconds(base, body):
    started = time.perf_counter()
    response = requests.post(
        f"{base}/v1/graphs", data=body, timeout=300, headers={"Content-Type": "application/json"}
    )
    accepted = time.perf_counter() - started
    assert response.status_code == 202, response.text[:500]
    graph = wait_for(
        base + response.headers["Location"], lambda g: g["status"] in ("succeeded", "failed")
    )
    assert graph["status"] == "succeeded", graph.get("error")
    return accepted, time.perf_counter() - started


def main():
    in_process_demo = best_of(lambda: train({}), 5)
    in_process_graph = best_of(lambda: evaluate(GRAPH), 50, budget=2)
    big = largest_graph()
    body = json.dumps(big)
    in_process_big = best_of(lambda: evaluate(big), 2, budget=60)

    with servers.redis() as (redis_url, data_dir):  # durable: AOF, as make run's
        with servers.stack(redis_url, data_dir, workers=2) as base:
            demo = demo_job_seconds(base)
            latencies = graph_latencies(base)
            accepted, evaluated = large_graph_seconds(base, body)

    median = statistics.median(demo)
    p50, p90, p99 = (latencies[int(q * (len(latencies) - 1))] for q in (0.5, 0.9, 0.99))
    print(
        f"over HTTP on a stack like make run's (AUTH off, no budgets); micrograd demo job: "
        f"median of {DEMO_RUNS} (best {min(demo) * 1e3:.0f} ms); README graph: {GRAPH_REQUESTS} "
        f"POSTs from one client, p90 {p90 * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms; largest "
        f"default graph ({len(big['nodes']):,} nodes, {len(body) / 2**20:.1f} MiB): 202 after "
        f"{accepted:.2f} s"
    )
    print_figures(
        [
            Figure(
                "micrograd demo job, submit -> read succeeded",
                median,
                in_process_demo,
                "in-process train({})",
            ),
            Figure(
                "micrograd demo job, the same",
                median,
                MICROGRAD_DEMO_SECONDS,
                "micrograd's own demo",
            ),
            Figure(
                "README graph POST /v1/graphs, p50", p50, in_process_graph, "in-process evaluate()"
            ),
            Figure(
                "largest default graph, POST -> succeeded",
                evaluated,
                in_process_big,
                "in-process evaluate()",
            ),
        ]
    )


if __name__ == "__main__":
    main()
