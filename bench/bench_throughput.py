"""Requests a second over HTTP, as production serves them: the API under gunicorn with its
config (gevent workers, service/api/gunicorn_conf.py), auth on with a real key and the rate
limiter counting (budgets of a second, so nothing is refused and the windows stay as
short as production's), against a bare Flask app answering a constant under the same
config, in the same run. wrk drives both (16 keep-alive connections) on the same machine;
the rounds alternate, and each figure is the median of its rounds.

- POST /v1/graphs, the README graph (examples/micrograd_graph.json): evaluated in the
  request, stored, 201; target: at least 60% of the bare app's rate;
- GET /v1/jobs/{id} of a queued job (polling is most of a job API's traffic): target at
  least 70%;
- the bare app's GET /redis, one Redis round trip before its constant (no target): the floor
  of any request that must count or read something shared, as both of the above do.

`python -m bench.bench_throughput [--quick] [--access-log]`: --quick (or `python -m bench
--quick`) runs one short round;
--access-log turns gunicorn's access log on (to a file) to show what it costs.
"""

import contextlib
import os
import statistics
import sys
from pathlib import Path

import psutil
import requests

from bench import load, servers
from bench.report import Figure, print_figures
from service.store import ApiKeys
from service.store.queue import connect

GRAPH = (Path(__file__).parent.parent / "examples" / "micrograd_graph.json").read_bytes()
BUDGETS = {  # counted, never reached at these rates; windows of a second, as short as 600/min's
    "GRADSERVE_RATE_LIMIT": "1000000/second",
    "GRADSERVE_RATE_LIMIT_SUBMIT": "1000000/second",
}
TARGETS = {"POST /v1/graphs (README graph)": 0.60, "GET /v1/jobs/{id}": 0.70}
ONE_ROUND_TRIP = "bare Flask + one Redis round trip"
"""No target: the floor of a request that reads or counts anything shared (bench/bare_app.py)."""


def cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system) used so far by these processes and their children, the
    ones that have exited too (gunicorn recycles a worker every max_requests)."""
    total = 0.0
    for pid in pids:
        process = psutil.Process(pid)
        times = process.cpu_times()
        total += times.user + times.system + times.children_user + times.children_system
        for child in process.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                times = child.cpu_times()
                total += times.user + times.system
    return total


def rounds(runs: dict, count: int, seconds: float) -> dict[str, list[tuple[load.Load, float]]]:
    """Each run in turn, `count` times, after a warm-up of each: (wrk's figures, the
    server's CPU seconds per request) of each. `runs` maps a name to (run, server pids)."""
    for run, _ in runs.values():
        run(1.0)
    results: dict[str, list[tuple[load.Load, float]]] = {name: [] for name in runs}
    for _ in range(count):
        for name, (run, pids) in runs.items():
            before = cpu_seconds(pids)
            found = run(seconds)
            results[name].append((found, (cpu_seconds(pids) - before) / found.requests))
    return results


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    quick = "--quick" in argv or os.environ.get("GRADSERVE_BENCH_QUICK") == "1"
    access_log = "--access-log" in argv
    if not load.available():
        print(load.WRK_HINT)
        return
    count, seconds = (1, 3.0) if quick else (3, 5.0)
    with servers.redis() as (url, scratch):
        settings = dict(BUDGETS)
        if access_log:
            settings["GUNICORN_ACCESS_LOG"] = str(scratch / "access.log")
        key = ApiKeys(connect(url)).create("bench")[1]
        auth = {"Authorization": f"Bearer {key}"}
        bare_args = ["bench.bare_app:app"]
        redis_pid = int(connect(url).info("server")["process_id"])
        with (
            servers.gunicorn(url, scratch, settings) as (api, api_pid),
            servers.gunicorn(url, scratch, {}, bare_args, ready="/") as (bare, bare_pid),
        ):
            job = requests.post(f"{api}/v1/jobs", json={}, headers=auth, timeout=30)
            assert job.status_code == 202, job.text
            job_url = api + job.headers["Location"]
            posted = {**auth, "Content-Type": "application/json"}
            served = [api_pid, redis_pid]
            runs = {
                "bare": (lambda s: load.run(f"{bare}/", "POST", GRAPH, posted, s), [bare_pid]),
                ONE_ROUND_TRIP: (
                    lambda s: load.run(f"{bare}/redis", "GET", None, auth, s),
                    [bare_pid, redis_pid],
                ),
                "POST /v1/graphs (README graph)": (
                    lambda s: load.run(f"{api}/v1/graphs", "POST", GRAPH, posted, s),
                    served,
                ),
                "GET /v1/jobs/{id}": (lambda s: load.run(job_url, "GET", None, auth, s), served),
            }
            results = rounds(runs, count, seconds)
    # Not 2xx (a 503 when Redis answered slower than REDIS_SOCKET_TIMEOUT on a busy
    # machine), or no answer within 10 s: a few are noise, more make the figure void.
    failed = {name: sum(r.failed for r, _ in found) for name, found in results.items()}
    made = {name: sum(r.requests for r, _ in found) for name, found in results.items()}
    assert all(failed[name] <= made[name] / 100 for name in made), f"failed: {failed}"
    rate = {name: statistics.median(r.rate for r, _ in found) for name, found in results.items()}
    p50 = {name: statistics.median(r.p50_ms for r, _ in found) for name, found in results.items()}
    # Requests per CPU-second of the server (its processes, and Redis for the API): what
    # the rate would be if the server had a core to itself, whatever else the machine runs.
    per_cpu = {name: 1 / statistics.median(c for _, c in found) for name, found in results.items()}
    log = "on (to a file)" if access_log else "off"
    print(
        f"wrk, 16 connections, {count} round(s) of {seconds:g} s each, median; auth on, "
        f"rate limits counting, access log {log}; baseline: a bare Flask app, same config; "
        f"failed: {sum(failed.values())} of {sum(made.values())}"
    )
    print_figures(
        [
            Figure(
                f"{name}, requests/s (p50 {p50[name]:.1f} ms)",
                rate[name],
                rate["bare"],
                "bare Flask",
                higher_is_better=True,
                target=TARGETS.get(name),
            )
            for name in [*TARGETS, ONE_ROUND_TRIP]
        ]
        + [
            Figure(
                f"{name}, requests per server CPU-second",
                per_cpu[name],
                per_cpu["bare"],
                "bare Flask",
                higher_is_better=True,
            )
            for name in [*TARGETS, ONE_ROUND_TRIP]
        ]
        + [  # what the request costs beyond the round trip every /v1 request makes
            Figure(f"{name}, requests/s", rate[name], rate[ONE_ROUND_TRIP], "floor", True)
            for name in TARGETS
        ],
        unit="/s",
    )


if __name__ == "__main__":
    main()
