"""The API's request path under hostile clients, on loopback, against a real gunicorn:

- slow clients: N sockets trickling request headers a byte a second and N bodies that
  stall after a few bytes, while /healthz and a small POST /v1/graphs are probed every
  0.2 s; p50/max latency and failures of the probes, and when the server cut the slow
  ones off;
- CPU-bound requests: 10 clients posting 20,000-node graphs (evaluated in the request)
  back to back, the same probes running;
- big posts: 8 concurrent 30 MiB graph posts; the API's memory (RSS of gunicorn and its
  workers, sampled) and the statuses;
- the JSON parse of the largest graph the defaults accept (500,000 nodes) and of a job's
  1,000,000 samples, by the standard library (as before) and by api/jsonbody.py; and
  what those samples cost past the parse (their checks, their canonical text).

`python -m bench.bench_request_path [slow|cpu|big|parse] [sync|gthread|gevent ...]` runs
one part, the first two for each worker class named (default: the configured one,
service/api/gunicorn_conf.py); `make bench` runs them all. Every part is bounded in time and
count and stays on 127.0.0.1.
"""

import contextlib
import http.client
import json
import random
import select
import socket
import statistics
import sys
import threading
import time
from unittest import mock

import orjson
import psutil
import requests

from bench.bench_service import largest_graph
from bench.servers import api
from engine import spec
from engine.value import paused_gc
from service import strictjson
from service.api.jsonbody import load_body
from service.store.jobdata import canonical

SMALL_GRAPH = {"nodes": [{"id": "a", "op": "input", "value": 2.0}]}
WORKER_CLASSES = {
    "sync": ["-k", "sync"],
    "gthread": ["-k", "gthread", "--threads", "32"],
    "gevent": ["-k", "gevent"],
}


# -- slow clients -------------------------------------------------------------------------


class Probes:
    """GET /healthz and a small POST /v1/graphs, alternately, every `interval` s, each on
    its own connection and thread (a stuck probe does not delay the next)."""

    def __init__(
        self, port: int, interval: float = 0.2, timeout: float = 10.0, key: str | None = None
    ) -> None:
        self.port, self.interval, self.timeout = port, interval, timeout
        self.headers = {"Content-Type": "application/json"}
        if key is not None:
            self.headers["Authorization"] = f"Bearer {key}"
        self.results: list[tuple[str, float, bool]] = []  # (kind, seconds, answered 2xx)
        self.lock = threading.Lock()

    def probe(self, kind: str) -> None:
        started = time.perf_counter()
        ok = False
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            if kind == "healthz":
                conn.request("GET", "/healthz")
            else:
                body = json.dumps(SMALL_GRAPH)
                conn.request("POST", "/v1/graphs", body, self.headers)
            ok = 200 <= conn.getresponse().status < 300
            conn.close()
        except (OSError, http.client.HTTPException):
            ok = False
        with self.lock:
            self.results.append((kind, time.perf_counter() - started, ok))

    def run(self, seconds: float) -> None:
        threads, deadline, turn = [], time.monotonic() + seconds, 0
        while time.monotonic() < deadline:
            kind = "healthz" if turn % 2 == 0 else "graph"
            thread = threading.Thread(target=self.probe, args=(kind,), daemon=True)
            thread.start()
            threads.append(thread)
            turn += 1
            time.sleep(self.interval)
        for thread in threads:
            thread.join(self.timeout + 1)

    def summary(self, kind: str) -> str:
        times = sorted(t for k, t, _ in self.results if k == kind)
        failed = sum(1 for k, _, ok in self.results if k == kind and not ok)
        return (
            f"{kind}: {len(times)} probes, p50 {statistics.median(times) * 1e3:.0f} ms, "
            f"max {max(times) * 1e3:.0f} ms, failed {failed}"
        )


def _closed(sock: socket.socket) -> bytes | None:
    """What the server sent before closing (b"" for nothing), or None while it is open."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return None
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
            if not select.select([sock], [], [], 0.05)[0]:
                return data or None  # a reply while the connection stays open
    except OSError:
        pass
    return data


class SlowClients:
    """`n` sockets trickling a request's headers a byte a second, and `n` that send the
    headers of a POST and 10 bytes of its 100,000-byte body, then nothing. `cut[kind]`:
    (seconds after connecting, the status the server answered or "closed") per socket the
    server cut off."""

    def __init__(self, port: int, n: int, key: str | None = None) -> None:
        self.port, self.n = port, n
        self.authorization = f"Authorization: Bearer {key}\r\n".encode() if key else b""
        self.trickling: list[socket.socket] = []
        self.stalled: list[socket.socket] = []
        self.cut: dict[str, list[tuple[float, str]]] = {"header": [], "body": []}
        self.started = 0.0
        self.stop = threading.Event()

    def connect(self) -> None:
        self.started = time.monotonic()
        for _ in range(self.n):
            sock = socket.create_connection(("127.0.0.1", self.port))
            sock.sendall(b"G")
            self.trickling.append(sock)
        head = (
            b"POST /v1/graphs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + self.authorization
            + b"Content-Length: 100000\r\n\r\n"
        )
        for _ in range(self.n):
            sock = socket.create_connection(("127.0.0.1", self.port))
            sock.sendall(head + b'{"nodes": ')
            self.stalled.append(sock)

    def run(self) -> None:
        rest = b"ET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 100_000
        sent = 0
        while not self.stop.wait(1.0):
            for kind, group in (("header", self.trickling), ("body", self.stalled)):
                for sock in list(group):
                    reply = _closed(sock)
                    if reply is None and kind == "header":
                        try:
                            sock.send(rest[sent : sent + 1])
                            continue
                        except OSError:
                            reply = b""
                    if reply is None:
                        continue
                    group.remove(sock)
                    sock.close()
                    status = reply.split(b"\r\n", 1)[0][9:12].decode() or "closed"
                    self.cut[kind].append((time.monotonic() - self.started, status))
            sent += 1

    def close(self) -> None:
        self.stop.set()
        for sock in self.trickling + self.stalled:
            sock.close()

    def summary(self) -> str:
        parts = []
        for kind in ("header", "body"):
            times = [t for t, _ in self.cut[kind]]
            statuses = ", ".join(sorted({s for _, s in self.cut[kind]}))
            when = f" after {min(times):.0f} to {max(times):.0f} s ({statuses})" if times else ""
            parts.append(f"{len(times)}/{self.n} slow-{kind} clients cut off{when}")
        return "; ".join(parts)


def slow_clients(base: str, n: int = 50, seconds: float = 30.0) -> list[str]:
    port = int(base.rsplit(":", 1)[1])
    probes = Probes(port)
    probes.run(2.0)  # unloaded
    quiet = [probes.summary("healthz"), probes.summary("graph")]
    probes.results.clear()
    clients = SlowClients(port, n)
    clients.connect()
    trickle = threading.Thread(target=clients.run, daemon=True)
    trickle.start()
    try:
        probes.run(seconds)
    finally:
        clients.close()
        trickle.join(5)
    return [
        f"  unloaded: {'; '.join(quiet)}",
        f"  with {n} slow-header and {n} stalled-body clients for {seconds:.0f} s: "
        f"{probes.summary('healthz')}; {probes.summary('graph')}",
        f"  {clients.summary()}",
    ]


# -- CPU-bound requests ------------------------------------------------------------------


def busy_clients(base: str, clients: int = 10, nodes: int = 20_000, seconds: float = 20.0):
    """`clients` clients posting graphs of `nodes` nodes (evaluated in the request, about
    0.4 s of CPU each) back to back while the probes run."""
    port = int(base.rsplit(":", 1)[1])
    body = json.dumps(largest_graph(nodes))
    stop, answered = threading.Event(), []

    def post() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                response = session.post(
                    f"{base}/v1/graphs",
                    data=body,
                    headers={"Content-Type": "application/json"},
                    timeout=60,
                )
                answered.append(response.status_code)

    threads = [threading.Thread(target=post, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    probes = Probes(port)
    try:
        probes.run(seconds)
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    return [
        f"  with {clients} clients posting {nodes:,}-node graphs back to back for "
        f"{seconds:.0f} s ({len(answered)} answered, "
        f"{sum(1 for s in answered if s != 201)} not 201): "
        f"{probes.summary('healthz')}; {probes.summary('graph')}"
    ]


# -- big posts ----------------------------------------------------------------------------


def rss(pid: int) -> int:
    """Bytes of memory gunicorn and its workers hold."""
    parent = psutil.Process(pid)
    total = parent.memory_info().rss
    for child in parent.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += child.memory_info().rss
    return total


def big_posts(base: str, pid: int, body: bytes, n: int = 8) -> list[str]:
    idle = rss(pid)
    peak, statuses = idle, []

    def post() -> None:
        try:
            response = requests.post(
                f"{base}/v1/graphs",
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=300,
            )
            statuses.append(response.status_code)
        except requests.RequestException as exc:
            statuses.append(type(exc).__name__)

    threads = [threading.Thread(target=post) for _ in range(n)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        peak = max(peak, rss(pid))
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    after = rss(pid)
    counts = {s: statuses.count(s) for s in sorted(set(statuses), key=str)}
    return [
        f"  {n} concurrent {len(body) / 2**20:.1f} MiB graph posts: statuses {counts}, "
        f"all answered in {elapsed:.1f} s",
        f"  API RSS: idle {idle / 2**20:.0f} MB, peak {peak / 2**20:.0f} MB, "
        f"after {after / 2**20:.0f} MB",
    ]


def mib_graph(mib: float = 30) -> bytes:
    """A graph/1 body of about `mib` MiB: the largest default graph (500,000 nodes, 27
    MiB), its ids padded to make up the size."""
    graph = largest_graph()
    nodes = graph["nodes"]
    pad = max(0, int((mib * 2**20 - len(json.dumps(graph))) / (2 * len(nodes))))
    rename = {node["id"]: node["id"] + "_" * pad for node in nodes}
    for node in nodes:
        node["id"] = rename[node["id"]]
        if "inputs" in node:
            node["inputs"] = [rename[i] for i in node["inputs"]]
    return json.dumps(graph).encode()


# -- JSON parse ---------------------------------------------------------------------------


def cpu_seconds(fn, repeat: int = 7) -> float:
    """The least CPU time of `repeat` calls (the machine may be shared), the collector
    paused as the API pauses it."""
    best = float("inf")
    for _ in range(repeat):
        with paused_gc():
            started = time.process_time()
            fn()
            best = min(best, time.process_time() - started)
    return best


def training_data(samples: int = 1_000_000) -> bytes:
    r = random.Random(0)
    x = [[r.random(), r.random()] for _ in range(samples)]
    return json.dumps({"data": {"x": x, "y": [r.choice([-1, 1]) for _ in x]}}).encode()


def parse_seconds() -> list[str]:
    """The standard library's strict parse (what the API did) against load_body (the
    limits and duplicate checks, on orjson), on the largest default graph and on a job's
    1,000,000 samples of inline data."""
    lines = []
    for name, body in (
        ("the largest default graph", json.dumps(largest_graph()).encode()),
        ("1,000,000 samples of training data", training_data()),
    ):
        before = cpu_seconds(lambda body=body: strictjson.loads(body))
        after = cpu_seconds(lambda body=body: load_body(body, 64, 100))
        lines.append(
            f"  {name} ({len(body) / 2**20:.1f} MiB): strictjson.loads {before:.3f} s, "
            f"load_body {after:.3f} s ({after / before:.2f}x), CPU, best of 7"
        )
    return lines


def submission_seconds() -> list[str]:
    """What a job's 1,000,000 samples of inline data cost past the parse, each in the
    same run as its baseline: normalize_spec checking the rows value by value (as it did)
    against at once (engine/numbers.py), and the data's canonical text written by the
    standard library against jobdata.canonical (orjson, the same bytes)."""
    body = orjson.loads(training_data())
    data = body["data"]
    by_value = (lambda rows, width: None, lambda y, loss: None)  # the fast checks declined
    with (
        mock.patch.object(spec, "finite_rows", by_value[0]),
        mock.patch.object(spec, "_good_labels", by_value[1]),
    ):
        one_by_one = cpu_seconds(lambda: spec.normalize_spec(body), 3)
    at_once = cpu_seconds(lambda: spec.normalize_spec(body), 3)
    stdlib = cpu_seconds(lambda: json.dumps(data, sort_keys=True, separators=(",", ":")), 3)
    ours = cpu_seconds(lambda: canonical(data), 3)
    assert canonical(data) == json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return [
        f"  normalize_spec: value by value {one_by_one:.3f} s, at once {at_once:.3f} s "
        f"({at_once / one_by_one:.2f}x), CPU, best of 3",
        f"  the canonical text: json.dumps {stdlib:.3f} s, canonical {ours:.3f} s "
        f"({ours / stdlib:.2f}x), the same bytes, CPU, best of 3",
    ]


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    part, names = (argv[0], argv[1:]) if argv else ("all", [])
    if part in ("all", "slow"):
        for name in names or [None]:
            label = name or "configured"
            with api(WORKER_CLASSES[name] if name else None) as (base, _):
                lines = slow_clients(base)
            print(f"slow clients, worker class {label}:", *lines, sep="\n", flush=True)
    if part in ("all", "cpu"):
        for name in names or [None]:
            label = name or "configured"
            with api(WORKER_CLASSES[name] if name else None) as (base, _):
                lines = busy_clients(base)
            print(f"CPU-bound requests, worker class {label}:", *lines, sep="\n", flush=True)
    if part in ("all", "big"):
        body = mib_graph(30)
        with api() as (base, pid):
            print("big posts:", *big_posts(base, pid, body), sep="\n", flush=True)
    if part in ("all", "parse"):
        print("JSON parse:", *parse_seconds(), sep="\n", flush=True)
        print("a job's inline data:", *submission_seconds(), sep="\n", flush=True)


if __name__ == "__main__":
    main()
