"""`make run`'s stack as real processes (`python -m service.stack`, loopback only): its Redis
is private to it, two stacks side by side share nothing, a restart finds its Redis and its
jobs again, and no process outlives it however it is stopped."""

import fcntl
import os
import select
import signal
import socket
import stat
import subprocess
import sys
import termios
import threading
import time

import psutil
import pytest
import redis
import requests

from service import settings
from service.api import create_app
from service.stack import redis_server
from service.store import Keys

from .service_helpers import ApiSession, client_with, long_spec, small_spec, wait_until

pytestmark = pytest.mark.e2e

STOP_LIMIT = 20.0
"""Seconds within which every process of a stack must be gone once it is told to stop."""

STARTED = []
"""The stacks a test started: whatever of them is left when it ends is killed."""


@pytest.fixture(autouse=True)
def no_leftovers():
    yield
    while STARTED:
        STARTED.pop().kill()


class Running:
    """`python -m service.stack` on its own data directory and port, in a session of its
    own; with `terminal`, that session's controlling terminal is a pseudo-terminal (as
    `make run` in a shell), whose closing hangs it up; with `under_make`, started by a
    `make` that leads that session (as `ssh -t host make run` does)."""

    def __init__(
        self,
        tmp_path,
        name,
        workers=1,
        api_port=None,
        terminal=False,
        under_make=False,
        wait=True,
        track=True,
    ):
        self.data_dir = tmp_path / name
        self.api_port = api_port or redis_server.free_port()
        self.base = f"http://127.0.0.1:{self.api_port}"
        self.log_path = tmp_path / f"{name}.log"
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "REDIS_PORT")}
        env.update(
            PORT=str(self.api_port),
            GRADSERVE_DATA_DIR=str(self.data_dir),
            WORKERS=str(workers),
            WEB_CONCURRENCY="1",
            GUNICORN_ACCESS_LOG="",
        )
        command = [sys.executable, "-m", "service.stack"]
        if under_make:
            makefile = tmp_path / "Makefile"
            makefile.write_text(f"run:\n\t{' '.join(command)}\n")
            command = ["make", "-s", "-f", str(makefile), "run"]
        self.terminal = None
        if terminal:
            self.terminal = Terminal()
            self.process = self.terminal.spawn(command, env)
        else:
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(
                    command, env=env, stdout=log, stderr=log, start_new_session=True
                )
        self.seen = set()
        if track:
            STARTED.append(self)
        if wait:
            try:
                wait_until(self.ready, timeout=60)
            except AssertionError as error:  # say why: what the stack wrote
                raise AssertionError(f"{error}: {self.log()}") from None

    def ready(self):
        if self.process.poll() is not None:
            raise AssertionError(f"the stack exited ({self.process.returncode}): {self.log()}")
        try:
            return requests.get(f"{self.base}/readyz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def log(self):
        if self.terminal is not None:
            return self.terminal.output.decode(errors="replace")
        return self.log_path.read_text(errors="replace")

    @property
    def api_key(self):
        """The key the stack made for tenant `local` (written before the API starts)."""
        return (self.data_dir / "api-key").read_text().strip()

    @property
    def api(self):
        return ApiSession(self.base, self.api_key)

    @property
    def redis_url(self):
        return (self.data_dir / "redis-url").read_text().strip()

    @property
    def redis_port(self):
        return int(self.redis_url.rsplit(":", 1)[1].split("/")[0])

    def processes(self):
        """This stack's processes: the one started and all its descendants."""
        root = psutil.Process(self.process.pid)
        processes = [root, *root.children(recursive=True)]
        self.seen.update(processes)
        return processes

    def kill(self):
        """Kill every process of it ever seen (a test that failed may leave some)."""
        if self.process.poll() is None:
            self.processes()
        for process in self.seen:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        self.process.wait(10)
        if self.terminal is not None:
            self.terminal.close()

    def submit(self, spec):
        response = self.api.post("/v1/jobs", json=spec, timeout=10)
        assert response.status_code == 202, response.text
        return response.json()["id"]

    def job(self, job_id):
        return self.api.get(f"/v1/jobs/{job_id}", timeout=10)

    def finished(self, job_id):
        return wait_until(
            lambda: (job := self.job(job_id).json())["status"] in ("succeeded", "failed") and job,
            timeout=60,
        )

    def running_with_a_horse(self, job_id):
        """Wait until the job runs, in a work-horse (a child of a worker): that process."""
        wait_until(lambda: self.job(job_id).json()["status"] == "running", timeout=60)
        return wait_until(
            lambda: [p for p in self.processes() if _is_worker(p.parent()) and _is_worker(p)]
        )[0]

    def stop(self, sig=signal.SIGINT):
        """Ctrl-C to its process group; the seconds until every process of it was gone."""
        return self.gone_after(lambda: os.killpg(self.process.pid, sig))

    def gone_after(self, act, limit=STOP_LIMIT):
        """Do `act`; the seconds until every process of this stack was gone (at most
        `limit`)."""
        processes = self.processes()
        assert len(processes) >= 5  # anchor, supervisor, Redis, gunicorn and its worker, ...
        began = time.monotonic()
        act()
        self.process.wait(limit)
        _, alive = psutil.wait_procs(processes, timeout=max(0.1, began + limit - time.monotonic()))
        seconds = time.monotonic() - began
        assert not alive, alive
        if self.terminal is not None:
            self.terminal.close()
        return seconds


def _is_worker(process):
    try:
        return process is not None and "service.worker" in " ".join(process.cmdline())
    except psutil.NoSuchProcess:
        return False


class Terminal:
    """A pseudo-terminal whose slave side is a session's controlling terminal: closing the
    master hangs it up (the kernel sends SIGHUP to the session), as closing a terminal
    window does. What the session writes is kept in `output`."""

    def __init__(self):
        self.master, self.slave = os.openpty()
        self.output = b""
        self._closing = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)

    def spawn(self, command, env):
        slave = self.slave

        def controlling_terminal():
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)  # after setsid: this session's terminal

        process = subprocess.Popen(
            command,
            env=env,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            preexec_fn=controlling_terminal,
        )
        os.close(slave)
        self._reader.start()
        return process

    def _read(self):
        while not self._closing.is_set():
            if select.select([self.master], [], [], 0.1)[0]:
                try:
                    self.output += os.read(self.master, 65536)
                except OSError:  # hung up
                    break
        os.close(self.master)

    def hang_up(self):
        self._closing.set()

    def close(self):
        self._closing.set()
        self._reader.join(5)


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    """One stack for the tests that only look at it."""
    stack = Running(tmp_path_factory.mktemp("stacks"), "first", track=False)
    try:
        yield stack
        stack.stop()
    finally:
        stack.kill()


def test_the_bundled_redis_refuses_a_client_without_credentials(first):
    with socket.create_connection(("127.0.0.1", first.redis_port), timeout=5) as raw:
        for command, refusal in (
            (b"PING\r\n", b"-NOAUTH"),
            (b"SET gradserve:x 1\r\n", b"-NOAUTH"),
            (b"AUTH default anything\r\n", b"-WRONGPASS"),
            (b"AUTH gradserve wrong\r\n", b"-WRONGPASS"),
            (b"AUTH gradserve-admin wrong\r\n", b"-WRONGPASS"),
        ):
            raw.sendall(command)
            assert raw.recv(4096).startswith(refusal), command
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=first.redis_port).ping()


@pytest.mark.parametrize(
    "command",
    [
        ["CONFIG", "GET", "dir"],
        ["CONFIG", "SET", "appendonly", "no"],
        ["FLUSHALL"],
        ["FLUSHDB"],
        ["DEBUG", "SLEEP", "0"],
        ["SHUTDOWN", "NOSAVE"],
        ["MODULE", "LIST"],
        ["KEYS", "*"],
        ["ACL", "LIST"],
        ["REPLICAOF", "NO", "ONE"],
        ["BGREWRITEAOF"],
        ["CLIENT", "KILL", "ID", "1"],
    ],
    ids=lambda command: " ".join(command[:2]),
)
def test_the_apps_credentials_cannot_administer_redis(first, command):
    app = redis.Redis.from_url(first.redis_url)
    with pytest.raises(redis.exceptions.NoPermissionError):
        app.execute_command(*command)
    assert app.ping()  # and the server is still there


def test_the_rate_limiter_counts_in_the_bundled_redis_as_the_apps_user(first):
    """The limiter's script (EVALSHA, SCRIPT LOAD) runs under the app's ACL user: over
    HTTP each /v1 answer's count goes down by one; in-process, with the stack's Redis URL
    (user and password in it) and a small limit, the limit is reached."""
    with first.api as api:
        counts = [api.get("/v1/jobs", timeout=10).headers["RateLimit-Remaining"] for _ in "ab"]
    assert int(counts[1]) == int(counts[0]) - 1
    app = create_app({"REDIS_URL": first.redis_url, "RATE_LIMIT": "2/minute"})
    client = client_with(app, first.api_key)
    assert [client.get("/v1/jobs").status_code for _ in range(3)] == [200, 200, 429]


def test_the_apps_user_may_publish_and_subscribe_the_changes_channel(first):
    """The notifier's channel under the bundled Redis's ACL: a job submitted with `Prefer:
    wait` over HTTP is answered finished (the API's subscriber heard the worker's PUBLISH)."""
    with first.api as api:
        response = api.post(
            "/v1/jobs", json={"steps": 5}, headers={"Prefer": "wait=30"}, timeout=60
        )
    assert response.json()["status"] == "succeeded", response.text
    assert response.headers["Preference-Applied"] == "wait=30"
    app = redis.Redis.from_url(first.redis_url)
    pubsub = app.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(Keys().changes_channel())
    receivers = app.publish(Keys().changes_channel(), "job:x")
    assert receivers >= 2, "this subscriber and the API process's notifier"
    assert wait_until(lambda: pubsub.get_message(timeout=1))["data"] == b"job:x"
    pubsub.close()


def test_the_admin_user_may_and_the_server_is_durable(first):
    admin_url = (first.data_dir / "redis" / "admin-url").read_text().strip()
    admin = redis.Redis.from_url(admin_url, decode_responses=True)
    assert admin.config_get("appendonly") == {"appendonly": "yes"}
    assert admin.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    assert admin.config_get("maxmemory") == {"maxmemory": str(1024**3)}  # REDIS_MAXMEMORY 1gb
    assert admin.config_get("bind") == {"bind": "127.0.0.1"}


def test_the_credentials_are_for_this_user_alone_and_never_on_a_command_line(first):
    redis_dir = first.data_dir / "redis"
    for path in (
        first.data_dir / "redis-url",
        first.data_dir / "api-key",
        redis_dir / "admin-url",
        redis_dir / "redis.conf",
    ):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(redis_dir.stat().st_mode) == 0o700
    password = redis.connection.parse_url(first.redis_url)["password"]
    assert len(password) >= 22  # 128 bits and more, in URL-safe base64
    assert password not in (redis_dir / "redis.conf").read_text()  # only its hash
    for process in psutil.process_iter(["cmdline"]):
        assert password not in " ".join(process.info["cmdline"] or [])
    log = first.log()
    assert password not in log and first.api_key not in log
    assert str(first.data_dir / "api-key") in log  # where the key is, never the key
    assert f"127.0.0.1:{first.redis_port}/0" in log and str(first.data_dir / "redis-url") in log


def test_a_worker_started_by_hand_finds_the_stacks_redis(first):
    """`make worker` with no REDIS_URL reads ./var/redis-url: here `--check` (is a worker
    of this host registered in that Redis?) says yes for the stack's own worker."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    check = [sys.executable, "-m", "service.worker", "--check"]
    here = subprocess.run(check, env={**env, "GRADSERVE_DATA_DIR": str(first.data_dir)}, timeout=30)
    assert here.returncode == 0  # no other way to its port than the file


def test_two_stacks_side_by_side_share_nothing(tmp_path):
    one, two = Running(tmp_path, "one", wait=False), Running(tmp_path, "two", wait=False)
    try:
        wait_until(lambda: one.ready() and two.ready(), timeout=60)
        assert one.redis_port != two.redis_port
        assert one.redis_url != two.redis_url
        mine, theirs = one.submit(small_spec()), two.submit(small_spec())
        assert one.finished(mine)["status"] == "succeeded"  # a real worker, as the app user
        assert two.finished(theirs)["status"] == "succeeded"
        assert two.job(mine).status_code == 404 and one.job(theirs).status_code == 404
        assert [job["id"] for job in two.api.get("/v1/jobs", timeout=10).json()["items"]] == [
            theirs
        ]
        for stack in (one, two):  # each says where its very own Redis is
            assert f"127.0.0.1:{stack.redis_port}/0, data in {stack.data_dir}" in stack.log()
    finally:
        one.stop()
        two.stop()


def test_a_restart_reuses_its_port_credentials_and_jobs_and_moves_off_a_taken_port(tmp_path):
    stack = Running(tmp_path, "again")
    job_id = stack.submit(small_spec())
    assert stack.finished(job_id)["status"] == "succeeded"
    url, port = stack.redis_url, stack.redis_port
    stack.stop()

    key = stack.api_key
    stack = Running(tmp_path, "again", api_port=stack.api_port)
    try:
        assert stack.redis_url == url  # the same port and credentials
        assert stack.api_key == key  # and the same API key, which still works
        assert stack.job(job_id).json()["status"] == "succeeded"
        # The admin command finds this stack's Redis through its redis-url file alone.
        env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
        revoke = [sys.executable, "-m", "service.keys", "revoke", key.split("_")[1]]
        env["GRADSERVE_DATA_DIR"] = str(stack.data_dir)
        assert subprocess.run(revoke, env=env, timeout=30).returncode == 0
        time.sleep(settings.KEY_CACHE_SECONDS + 0.1)  # no process remembers it longer
        assert stack.job(job_id).status_code == 401
    finally:
        stack.stop()

    with socket.socket() as squatter:  # someone else took the port meanwhile
        # as servers do: Redis's side of connections it closed may still be in TIME_WAIT
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        stack = Running(tmp_path, "again", api_port=stack.api_port)
        try:
            assert stack.redis_port != port  # another one, recorded
            assert stack.api_key != key  # the revoked key was replaced
            assert stat.S_IMODE((stack.data_dir / "api-key").stat().st_mode) == 0o600
            moved = redis.connection.parse_url(stack.redis_url)
            assert moved["password"] == redis.connection.parse_url(url)["password"]
            assert stack.job(job_id).json()["status"] == "succeeded"
            assert f"127.0.0.1:{stack.redis_port}/0" in (stack.data_dir / "redis-url").read_text()
        finally:
            stack.stop()


def test_a_second_stack_on_the_same_data_directory_is_refused(first, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "REDIS_PORT")}
    env.update(PORT=str(redis_server.free_port()), GRADSERVE_DATA_DIR=str(first.data_dir))
    second = subprocess.run(
        [sys.executable, "-m", "service.stack"], env=env, capture_output=True, text=True, timeout=60
    )
    assert second.returncode != 0
    assert f"another stack runs on {first.data_dir}" in second.stderr
    assert first.ready()


@pytest.mark.parametrize(
    "how", ["terminal closed", "terminal closed under make", "Ctrl-C", "SIGTERM"]
)
def test_stopping_leaves_no_process_behind(tmp_path, how):
    """With a job running (so a work-horse too): every process is gone within 20 s."""
    terminal = how.startswith("terminal closed")
    stack = Running(tmp_path, "stopped", terminal=terminal, under_make=how.endswith("make"))
    job_id = stack.submit(long_spec())
    assert stack.running_with_a_horse(job_id)
    if terminal:
        act = stack.terminal.hang_up
    elif how == "Ctrl-C":
        act = lambda: os.killpg(stack.process.pid, signal.SIGINT)  # noqa: E731
    else:
        act = lambda: stack.process.send_signal(signal.SIGTERM)  # noqa: E731 - `make run` alone
    seconds = stack.gone_after(act)
    # make dies of the hang-up once its child has stopped
    assert stack.process.returncode == (-signal.SIGHUP if how.endswith("make") else 0)
    print(f"{how}: all gone in {seconds:.1f} s")
    if how == "SIGTERM":  # a plain stop: no process dies telling of a failure
        assert "Traceback" not in stack.log(), stack.log()[-4000:]
    if how == "terminal closed":  # the one stop with a console that is gone
        # in order: the job was handed back (queued again) while Redis was still there
        stack = Running(tmp_path, "stopped", workers=0, api_port=stack.api_port)
        try:
            assert stack.job(job_id).json()["status"] == "queued"
        finally:
            stack.stop()


@pytest.mark.parametrize("victim", ["anchor", "supervisor"])
def test_a_killed_supervisor_leaves_no_process_behind(tmp_path, victim):
    """kill -9 of the process `make run` started (the anchor) or of the supervisor under
    it: the rest stops too, also a work-horse in the middle of a job."""
    stack = Running(tmp_path, "killed")
    job_id = stack.submit(long_spec())
    assert stack.running_with_a_horse(job_id)
    (supervisor,) = psutil.Process(stack.process.pid).children()
    pid = stack.process.pid if victim == "anchor" else supervisor.pid
    seconds = stack.gone_after(lambda: os.kill(pid, signal.SIGKILL))
    assert seconds < (5.0 if victim == "anchor" else STOP_LIMIT)
    print(f"kill -9 of the {victim}: all gone in {seconds:.1f} s")


def test_children_that_do_not_stop_are_killed_within_the_limit(tmp_path):
    """A worker and the API frozen (SIGSTOP: deaf to SIGTERM) are killed, with what they
    started, and Redis still stops in turn: all within 20 s of Ctrl-C."""
    stack = Running(tmp_path, "frozen")
    frozen = [p for p in stack.processes() if _is_worker(p) or "gunicorn" in " ".join(p.cmdline())]
    assert len(frozen) == 3  # the worker, gunicorn and its worker
    for process in frozen:
        process.suspend()
    seconds = stack.stop()
    assert seconds < STOP_LIMIT
    assert "did not stop in time: killed" in stack.log()
    print(f"Ctrl-C with frozen children: all gone in {seconds:.1f} s")
