"""A 1,000,000-node graph/1 (1,000 leaves, the 499,500 products of every pair, a pairwise
sum tree), three ways, in one run:

- micrograd 0.1.0's build and backward of the same expression (the baseline);
- in-process `evaluate(doc)`: a decoded document in, its result (values and gradients as
  dicts over the arrays, engine.arraydict) out;
- over HTTP on a stack like `make run`'s (gunicorn, Redis, one rq worker): POST with
  `Prefer: respond-async`, poll the Location, GET the result (its bytes received).

Then the finished graph read again, as the console opens its page: its summary alone
(`Prefer: return=minimal`) against the whole result, each as a client that accepts gzip.

Rounds take the three in turn (bench/timing.py's round_robin), so a busy moment of this
shared machine falls on all of them alike; each figure is printed as a ratio against
micrograd's and in-process evaluate's, best against best and round by round. The stack
takes 1,000,000 nodes and a 64 MiB body (GRADSERVE_MAX_GRAPH_NODES, _MAX_CONTENT_LENGTH):
the defaults stop at 500,000 and 32 MiB."""

import contextlib
import gzip
import os
import time

import orjson
import requests

from bench import servers
from bench.bench_compiled import in_big_stack
from bench.report import Figure, print_figures
from bench.servers import AUTH_OFF
from bench.shapes import BIG_LEAVES, micrograd_products_and_sum_tree, products_and_sum_tree
from bench.timing import best_of, fastest, median_and_range, round_robin
from engine.columns import columns_of, pack, unpack
from engine.compiled.evaluate import evaluate_compiled, result_json, run_columns
from engine.draw import to_dot
from engine.evaluate import evaluate
from engine.value import paused_gc
from service.api.compression import gzipped

POLL = 0.005
ROUNDS = 3


def parts_of_evaluate(doc):
    """{step: seconds}: the parts of in-process evaluate (and of the service's path), each
    the best of 3."""
    with paused_gc():
        columns = columns_of(doc)
        packed, written = pack(columns), result_json(columns)
        return {
            "columns_of (validate into arrays)": best_of(lambda: columns_of(doc), 3, budget=10),
            "run_columns (compile, forward, backward)": best_of(
                lambda: run_columns(columns), 3, budget=10
            ),
            "evaluate_compiled (the above, the result dicts over the arrays)": best_of(
                lambda: evaluate_compiled(columns), 3, budget=10
            ),
            "result_json (run_columns, written as JSON from arrays)": best_of(
                lambda: result_json(columns), 3, budget=10
            ),
            "pack + unpack (API -> worker)": best_of(lambda: unpack(pack(columns)), 3, budget=10),
            "to_dot (a GET's DOT: unpack, 200 nodes drawn, read where drawn)": best_of(
                lambda: to_dot(unpack(packed), written), 3, budget=10
            ),
        }


def gzip_figure(written):
    """The result gzipped as the API sends it to a client that accepts gzip (level 1, ISA-L's
    igzip: api/compression.py), against zlib's level 1; best of 3 each."""
    with paused_gc():
        ours = best_of(lambda: gzipped(written, 1), 3, budget=10)
        zlibs = best_of(lambda: gzip.compress(written, 1, mtime=0), 3, budget=10)
    assert gzip.decompress(gzipped(written, 1)) == written
    size = f"{len(written) / 2**20:.1f} MiB"
    return Figure(f"the result ({size}) gzipped as sent, level 1", ours, zlibs, "zlib")


def timed(fn):
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started,)


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
    rounds = 1 if os.environ.get("GRADSERVE_BENCH_QUICK") == "1" else ROUNDS

    doc = products_and_sum_tree(BIG_LEAVES)
    body = orjson.dumps(doc)
    n = len(doc["nodes"])
    print(
        f"A {n:,}-node graph/1 ({BIG_LEAVES:,} leaves, products, a sum tree), "
        f"{len(body) / 2**20:.1f} MiB of JSON"
    )
    print("  the parts of in-process evaluate and of the service's path (best of 3):")
    for name, seconds in parts_of_evaluate(doc).items():
        print(f"    {name}: {seconds:.3f} s")
    print_figures([gzip_figure(result_json(columns_of(doc)))])

    received = []
    with big_stack(n) as base:

        def http():
            accepted, done, content = over_http(base, body)
            received[:] = [content]
            return done, accepted

        runs = {"evaluate": lambda: timed(lambda: evaluate(doc)), "http": http}
        for run in runs.values():  # warm: numpy's lazy imports, the stack's first request
            run()
        if MicrogradValue is not None:
            runs = {
                "micrograd": lambda: in_big_stack(
                    lambda: timed(lambda: micrograd_products_and_sum_tree(MicrogradValue, doc))
                ),
                **runs,
            }
        samples = round_robin(runs, rounds, warm_up=False)
        result = orjson.loads(received[0])
        reads = read_finished(f"{base}/v1/graphs/{result['id']}")

    assert result["status"] == "succeeded", result.get("error")
    assert result["result"] == evaluate(doc), "the service's result differs from evaluate's"
    report(samples, rounds)
    print(f"  result: {len(received[0]) / 2**20:.1f} MiB of JSON, the same as evaluate(doc)'s")
    minimal, whole = reads
    print_figures([Figure("a finished graph's GET, whole", whole, minimal, "return=minimal")])


def read_finished(url):
    """Seconds to GET a finished graph with `Prefer: return=minimal`, and whole (best of 3
    each; decoded, as a client would)."""

    def read(headers):
        return lambda: requests.get(url, headers=headers, timeout=300).json()

    minimal = best_of(read({"Prefer": "return=minimal"}), 3, budget=10)
    return minimal, best_of(read({}), 3, budget=10)


@contextlib.contextmanager
def big_stack(n):
    """A stack like `make run`'s (gunicorn, Redis, one rq worker) that takes `n` nodes and
    a 64 MiB body; its base URL."""
    big = {"GRADSERVE_MAX_GRAPH_NODES": str(n), "GRADSERVE_MAX_CONTENT_LENGTH": str(64 * 2**20)}
    with (
        servers.redis() as (url, data_dir),
        servers.stack(url, data_dir, {**AUTH_OFF, **big}) as base,
    ):
        yield base


def report(samples, rounds):
    """The best of each figure, its ratio against its baseline (report.py's table), and the
    ratio of each round, taken side by side."""
    evaluate_s = fastest(samples["evaluate"])[0]
    http_s, accepted = fastest(samples["http"])
    figures = []
    if "micrograd" in samples:
        theirs = fastest(samples["micrograd"])[0]
        figures.append(
            Figure("in-process evaluate(doc)", evaluate_s, theirs, "micrograd", target=1 / 6)
        )
    figures.append(
        Figure("over HTTP: POST, queued, poll, GET", http_s, evaluate_s, "evaluate", target=2.0)
    )
    print(f"  best of {rounds} rounds, each round taking micrograd, evaluate and HTTP in turn:")
    print_figures(figures)
    if "micrograd" in samples:
        print(f"  evaluate(doc) is {theirs / evaluate_s:.1f}x as fast as micrograd")
    print(f"  over HTTP, the 202 came after {accepted:.2f} s")
    per_round = {
        "HTTP / evaluate": [
            h[0] / e[0] for h, e in zip(samples["http"], samples["evaluate"], strict=True)
        ]
    }
    if "micrograd" in samples:
        per_round["micrograd / evaluate"] = [
            m[0] / e[0] for m, e in zip(samples["micrograd"], samples["evaluate"], strict=True)
        ]
    for name, ratios in per_round.items():
        median, low, high = median_and_range(ratios)
        print(f"  {name}, round by round: median {median:.2f}, {low:.2f} to {high:.2f}")
    for name, figures_of_rounds in samples.items():
        print(f"    {name}: " + ", ".join(f"{f[0]:.2f} s" for f in figures_of_rounds))


if __name__ == "__main__":
    main()
