"""Live progress: how soon a client knows a job has ended, and what an open event stream
costs the API. Against a real stack (a Redis, the API under gunicorn with ONE gevent worker
process, one rq worker), on loopback, AUTH off and no rate limits.

- Latency: from a job's last step being stored (its terminal write: the bench's own
  subscriber to the store's changes channel timestamps it) to the client knowing it, for
  three clients of the same job at once: an event stream (the terminal `status` event
  parsed), `GET /v1/jobs/{id}` with `Prefer: wait=30` (the answer received), the job's
  `completed` webhook (received on loopback; the workers' senders look for due deliveries
  every WEBHOOK_POLL_INTERVAL, 0.5 s) and the baseline, a poll of `GET /v1/jobs/{id}`
  every 50 ms.
- Cost: the API process's memory (RSS) before and with 200 streams open (half on a
  running job, half on a queued one), per stream; small requests a second (GET
  /v1/jobs/{id}, 4 client threads, keep-alive) with 0 and with 200 streams open.
"""

import contextlib
import json
import multiprocessing
import os
import selectors
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import redis as redis_client
import requests

from bench.servers import wait_ready
from service.retry import retry
from service.stack import Stack, redis_server
from service.store import Keys
from tests.sse import events_of, stream

ROUNDS = 12
STREAMS = 200
TERMINAL = ("succeeded", "failed", "cancelled")
SPEC = {"model": {"inputs": 2, "layers": [4, 1]}, "dataset": {"name": "moons", "samples": 16}}
LONG = {"engine": "reference", "steps": 1_000_000}  # a few steps a second, for minutes


@contextlib.contextmanager
def live_stack() -> Iterator[tuple[str, str, Stack]]:
    """(base URL, Redis URL, the stack)."""
    with tempfile.TemporaryDirectory() as data_dir:
        directory = Path(data_dir)
        redis_port, port = redis_server.free_port(), redis_server.free_port()
        redis = redis_server.start(redis_port, directory / "redis", durable=True)
        url = redis_server.url(redis_port)
        redis_server.wait_ready(url, redis)
        env = {
            **os.environ,
            "REDIS_URL": url,
            "PORT": str(port),
            "WEB_CONCURRENCY": "1",
            "GUNICORN_ACCESS_LOG": "",
            "GRADSERVE_AUTH": "off",
            "GRADSERVE_RATE_LIMIT": "",
            "GRADSERVE_RATE_LIMIT_SUBMIT": "",
            "GRADSERVE_MAX_ACTIVE_JOBS": "1000",
            "GRADSERVE_WEBHOOK_ALLOW_PRIVATE": "1",  # the receiver is on loopback
        }
        with open(directory / "stack.log", "w") as log:
            stack = Stack(workers=1, data_dir=directory, env=env, output=log)
            stack.start()
            supervisor = threading.Thread(target=stack.supervise, daemon=True)
            supervisor.start()
            base = f"http://127.0.0.1:{port}"
            try:
                wait_ready(base)
                yield base, url, stack
            finally:
                stack.stopping = True
                supervisor.join()
                stack.stop()
                redis.terminate()
                redis.wait(10)


class StoredClock:
    """When each job's terminal write reached Redis: a subscriber to the changes channel
    (the same message the API's notifier gets) reads the status on each message."""

    def __init__(self, url: str) -> None:
        self.redis = redis_client.Redis.from_url(url)
        self.pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(Keys().changes_channel())
        self.stored: dict[str, float] = {}
        threading.Thread(target=self._listen, daemon=True).start()

    def _listen(self) -> None:
        with contextlib.suppress(redis_client.RedisError):  # the stack stops at the end
            self._follow()

    def _follow(self) -> None:
        for message in self.pubsub.listen():
            at = time.monotonic()
            job_id = message["data"].decode().removeprefix("job:")
            if job_id in self.stored:
                continue
            status = self.redis.hget(Keys().job(job_id), "status")
            if status is not None and status.decode() in TERMINAL:
                self.stored[job_id] = at


def by_stream(session: requests.Session, job_id: str, known: dict) -> None:
    with stream(session, f"/v1/jobs/{job_id}/events") as response:
        for event in events_of(response):
            if event.get("event") == "status" and event["data"]["status"] in TERMINAL:
                known["stream"] = time.monotonic()
                return


def by_wait(session: requests.Session, job_id: str, known: dict) -> None:
    while True:
        job = session.get(f"/v1/jobs/{job_id}", headers={"Prefer": "wait=30"}, timeout=60)
        if job.json()["status"] in TERMINAL:
            known["wait"] = time.monotonic()
            return


def by_poll(session: requests.Session, job_id: str, known: dict) -> None:
    while session.get(f"/v1/jobs/{job_id}", timeout=10).json()["status"] not in TERMINAL:
        time.sleep(0.05)
    known["poll"] = time.monotonic()


class Hooks:
    """A webhook receiver on loopback: when each job's `completed` delivery came."""

    def __init__(self) -> None:
        self.completed: dict[str, float] = {}
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's spelling)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("webhook-event") == "completed":
                    hooks.completed[json.loads(body)["id"]] = time.monotonic()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


class Session(requests.Session):
    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base

    def request(self, method, url, *args, **kwargs):  # type: ignore[override]
        return super().request(method, self.base + url, *args, **kwargs)


def latencies(base: str, clock: StoredClock) -> dict[str, list[float]]:
    """ms from the terminal write to each client knowing it, round by round."""
    found: dict[str, list[float]] = {"stream": [], "wait": [], "poll": [], "webhook": []}
    clients = {"stream": by_stream, "wait": by_wait, "poll": by_poll}
    sessions = {name: Session(base) for name in clients}
    hooks = Hooks()
    for _ in range(ROUNDS):
        spec = {**SPEC, "steps": 3000, "webhook": {"url": hooks.url}}
        job_id = sessions["poll"].post("/v1/jobs", json=spec).json()["id"]
        known: dict[str, float] = {}
        threads = [
            threading.Thread(target=client, args=(sessions[name], job_id, known))
            for name, client in clients.items()
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        stored = retry(lambda job_id=job_id: clock.stored[job_id], (KeyError,), 5, pause=0.01)
        known["webhook"] = retry(
            lambda job_id=job_id: hooks.completed[job_id], (KeyError,), 30, pause=0.01
        )
        for name in found:
            found[name].append((known[name] - stored) * 1000)
    hooks.server.shutdown()
    return found


def open_streams(base: str, job_ids: list[str], count: int) -> list[socket.socket]:
    host, port = base.removeprefix("http://").split(":")
    socks = []
    for i in range(count):
        sock = socket.create_connection((host, int(port)), timeout=30)
        request = f"GET /v1/jobs/{job_ids[i % len(job_ids)]}/events HTTP/1.1\r\nHost: x\r\n\r\n"
        sock.sendall(request.encode())
        head = b""
        while b"retry:" not in head:
            head += sock.recv(65536)
        sock.setblocking(False)
        socks.append(sock)
    return socks


def hold_streams(base: str, job_ids: list[str], count: int, ready, stop) -> None:
    """In a process of its own (its reading never slows the bench's clients): open `count`
    streams, read them as they come until `stop` is set."""
    socks = open_streams(base, job_ids, count)
    drain = Drain(socks)
    ready.set()
    stop.wait(300)
    drain.stop()
    for sock in socks:
        sock.close()


class Drain:
    """Reads every open stream as it comes (clients that keep up)."""

    def __init__(self, socks: list[socket.socket]) -> None:
        self.selector = selectors.DefaultSelector()
        for sock in socks:
            self.selector.register(sock, selectors.EVENT_READ)
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while self.running:
            for key, _ in self.selector.select(0.2):
                with contextlib.suppress(BlockingIOError, OSError):
                    key.fileobj.recv(1 << 20)

    def stop(self) -> None:
        self.running = False
        self.thread.join(5)


def small_requests_per_second(base: str, path: str, seconds: float = 5.0) -> float:
    counts, stop_at, statuses = [], time.monotonic() + seconds, set()

    def client() -> None:
        session, done = Session(base), 0
        while time.monotonic() < stop_at:
            response = session.get(path, timeout=10)
            if response.status_code != 200 and response.status_code not in statuses:
                print(f"  ({response.status_code} while measuring: {response.text[:300]})")
            statuses.add(response.status_code)
            done += response.status_code == 200
        counts.append(done)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / seconds


def api_cpu(stack: Stack) -> float:
    """CPU seconds the API's worker process has used."""
    assert stack.api is not None
    times = [child.cpu_times() for child in psutil.Process(stack.api.pid).children()]
    return sum(t.user + t.system for t in times)


def api_rss(stack: Stack) -> int:
    """Bytes the API's worker process holds (gunicorn's one child)."""
    assert stack.api is not None
    children = psutil.Process(stack.api.pid).children()
    return sum(child.memory_info().rss for child in children)


def main() -> None:
    with live_stack() as (base, url, stack):
        clock = StoredClock(url)
        session = Session(base)
        session.post("/v1/jobs", json={**SPEC, "steps": 10}, headers={"Prefer": "wait=30"})
        found = latencies(base, clock)
        print(f"time from the last step stored to the client knowing it ({ROUNDS} jobs):")
        for name, label in (
            ("stream", "event stream"),
            ("wait", "Prefer: wait=30"),
            ("webhook", "webhook completed"),
            ("poll", "poll every 50 ms"),
        ):
            ms = found[name]
            print(f"  {label:18} median {statistics.median(ms):6.1f} ms, max {max(ms):6.1f} ms")
        running = session.post("/v1/jobs", json=LONG).json()["id"]
        queued = session.post("/v1/jobs", json=LONG).json()["id"]
        while session.get(f"/v1/jobs/{running}").json()["status"] != "running":
            time.sleep(0.1)
        path = f"/v1/jobs/{running}"
        small_requests_per_second(base, path, 1.0)  # warm up
        cpu = api_cpu(stack)
        idle_rate = small_requests_per_second(base, path)
        idle_cpu = (api_cpu(stack) - cpu) / 5
        time.sleep(1)
        before = api_rss(stack)
        ready, stop = multiprocessing.Event(), multiprocessing.Event()
        holder = multiprocessing.Process(
            target=hold_streams, args=(base, [running, queued], STREAMS, ready, stop)
        )
        holder.start()
        assert ready.wait(120), "the streams did not open"
        time.sleep(3)
        after = api_rss(stack)
        cpu = api_cpu(stack)
        time.sleep(5)
        streams_cpu = (api_cpu(stack) - cpu) / 5
        cpu = api_cpu(stack)
        busy_rate = small_requests_per_second(base, path)
        busy_cpu = (api_cpu(stack) - cpu) / 5
        stop.set()
        holder.join(30)
        for job_id in (running, queued):
            session.post(f"/v1/jobs/{job_id}/cancel")
        print(
            f"API process memory: {before / 2**20:.1f} MiB, {after / 2**20:.1f} MiB with "
            f"{STREAMS} streams open: {(after - before) / STREAMS / 1024:.1f} KiB a stream"
        )
        print(
            f"GET /v1/jobs/{{id}} a second (4 clients): {idle_rate:.0f} with no stream, "
            f"{busy_rate:.0f} with {STREAMS} open ({busy_rate / idle_rate:.2f}x)"
        )
        print(
            f"API process CPU: {idle_cpu:.0%} serving them with no stream; {streams_cpu:.0%} "
            f"for {STREAMS} open streams alone; {busy_cpu:.0%} serving them with the streams"
        )


if __name__ == "__main__":
    main()
