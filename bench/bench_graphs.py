"""A 1,000,000-node graph/1 (1,000 leaves, the 499,500 products of every pair, a pairwise
sum tree), three ways, in one run:

- micrograd 0.1.0's build and backward of the same expression (the baseline);
- in-process `evaluate(doc)`: a decoded document in, values and gradients as dicts out;
- over HTTP on a stack like `make run`'s (gunicorn, Redis, one rq worker): POST with
  `Prefer: respond-async`, poll the Location, GET the result (its bytes received).

Each figure is printed as a ratio against micrograd's and in-process evaluate's. The stack
takes 1,000,000 nodes and a 64 MiB body (GRADSERVE_MAX_GRAPH_NODES, _MAX_CONTENT_LENGTH):
the defaults stop at 500,000 and 32 MiB."""

import os
import tempfile
import time
from pathlib import Path

import orjson
import requests

from bench.bench_compiled import in_big_stack
from bench.shapes import BIG_LEAVES, micrograd_products_and_sum_tree, products_and_sum_tree
from bench.timing import best_of
from engine.columns import columns_of, pack, unpack
from engine.compiled.evaluate import evaluate_compiled, result_json, run_columns
from engine.evaluate import evaluate
from engine.value import paused_gc
from service.retry import retry
from service.stack import Stack, redis_server

POLL = 0.005
HTTP_RUNS = 3


def in_process(doc):
    """(evaluate(doc) seconds, {step: seconds}): the whole call and its parts."""
    whole = best_of(lambda: evaluate(doc), 3, budget=20.0)
    with paused_gc():
        columns = columns_of(doc)
        parts = {
            "columns_of (validate into arrays)": best_of(lambda: columns_of(doc), 3, budget=10),
            "run_columns (compile, forward, backward)": best_of(
                lambda: run_columns(columns), 3, budget=10
            ),
            "evaluate_compiled (the above + result dicts)": best_of(
                lambda: evaluate_compiled(columns), 3, budget=10
            ),
            "result_json (the above, written from arrays)": best_of(
                lambda: result_json(columns), 3, budget=10
            ),
            "pack + unpack (API -> worker)": best_of(lambda: unpack(pack(columns)), 3, budget=10),
        }
    return whole, parts


def wait_listening(base, timeout=120):
    def ready():
        requests.get(f"{base}/readyz", timeout=10).raise_for_status()

    retry(ready, (requests.ConnectionError, requests.HTTPError, requests.Timeout), timeout, 0.1)


def over_http(base, body):
    """(202 after, succeeded seen after, result received after) seconds, and the result."""
    headers = {
        "Content-Type": "application/json",
        "Prefer": "respond-async",
        "Accept-Encoding": "identity",  # loopback: gzip would cost more than it saves
    }
    with requests.Session() as http:
        started = time.perf_counter()
        response = http.post(f"{base}/v1/graphs", data=body, headers=headers, timeout=300)
        accepted = time.perf_counter() - started
        assert response.status_code == 202, response.text[:500]
        url = base + response.headers["Location"]
        while True:
            response = http.get(url, headers={"Accept-Encoding": "identity"}, timeout=300)
            head = response.content[:200]  # the status comes before the result
            if b'"status":"succeeded"' in head or b'"status":"failed"' in head:
                break
            time.sleep(POLL)
        done = time.perf_counter() - started
    return accepted, done, response.content


def main():
    try:
        from micrograd.engine import Value as MicrogradValue
    except ImportError:
        MicrogradValue = None
        print("micrograd is not installed (pip install micrograd==0.1.0): no micrograd figures")

    doc = products_and_sum_tree(BIG_LEAVES)
    body = orjson.dumps(doc)
    n = len(doc["nodes"])
    print(
        f"A {n:,}-node graph/1 ({BIG_LEAVES:,} leaves, products, a sum tree), "
        f"{len(body) / 2**20:.1f} MiB of JSON"
    )

    whole, parts = in_process(doc)
    theirs = None
    if MicrogradValue is not None:
        theirs = in_big_stack(
            lambda: best_of(lambda: micrograd_products_and_sum_tree(MicrogradValue, doc), 1)
        )
        print(f"  micrograd 0.1.0 build + backward: {theirs:.2f} s (the baseline)")
    ratio = f": {theirs / whole:.1f}x as fast as micrograd" if theirs else ""
    print(f"  in-process evaluate(doc): {whole:.2f} s{ratio}")
    for name, seconds in parts.items():
        print(f"    {name}: {seconds:.3f} s")
    arrays = parts["columns_of (validate into arrays)"]
    arrays += parts["run_columns (compile, forward, backward)"]
    if theirs:
        print(
            f"  values and gradients as arrays (columns_of + run_columns, no result dicts): "
            f"{arrays:.2f} s, {theirs / arrays:.1f}x as fast as micrograd"
        )

    times, content = [], None
    with tempfile.TemporaryDirectory() as data_dir:
        redis_port, port = redis_server.free_port(), redis_server.free_port()
        redis = redis_server.start(redis_port, Path(data_dir) / "redis")
        redis_server.wait_ready(redis_server.url(redis_port), redis)
        env = {
            **os.environ,
            "REDIS_URL": redis_server.url(redis_port),
            "PORT": str(port),
            "GUNICORN_ACCESS_LOG": "",
            "GRADSERVE_AUTH": "off",
            "GRADSERVE_RATE_LIMIT": "",
            "GRADSERVE_RATE_LIMIT_SUBMIT": "",
            "GRADSERVE_MAX_GRAPH_NODES": str(n),
            "GRADSERVE_MAX_CONTENT_LENGTH": str(64 * 2**20),
        }
        with open(Path(data_dir) / "stack.log", "w") as log:
            stack = Stack(workers=1, data_dir=Path(data_dir), env=env, output=log)
            stack.start()
            base = f"http://127.0.0.1:{port}"
            try:
                wait_listening(base)
                for _ in range(HTTP_RUNS):
                    accepted, done, content = over_http(base, body)
                    times.append((done, accepted))
            finally:
                stack.stop()
                redis.terminate()
                redis.wait(10)

    result = orjson.loads(content)
    assert result["status"] == "succeeded", result.get("error")
    want = evaluate(doc)
    assert result["result"] == want, "the service's result differs from evaluate's"
    done, accepted = min(times)
    print(
        f"  over HTTP (POST, queued, poll, GET the result; best of {HTTP_RUNS}): {done:.2f} s "
        f"= {done / whole:.2f}x in-process evaluate (202 after {accepted:.2f} s)"
        + (f"; {theirs / done:.1f}x as fast as micrograd" if theirs else "")
    )
    print(f"    result: {len(content) / 2**20:.1f} MiB of JSON, the same as evaluate(doc)'s")


if __name__ == "__main__":
    main()
