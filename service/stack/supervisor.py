"""`python -m service.stack` (`make run`): the whole stack on one machine, supervised.

Redis (the bundled redis-server, private to this stack, its files under ./var/, unless
REDIS_URL points elsewhere), the API under gunicorn on 127.0.0.1:$PORT, and $WORKERS rq
workers (one per core by default); a child that dies is started again (Redis on the same
data). Ctrl-C, SIGTERM or SIGHUP (its terminal closed) stops the API, then the workers
(each hands its job back to the queue, checkpointed, at the job's next step; one that takes
longer than a grace period is stopped, its job resumed from its latest checkpoint), then
Redis: all of it within 20 s.

No process outlives it. The process started (the anchor) runs the supervisor as its child
and does nothing else, so that a `kill -9` of it still stops the stack in that order: the
supervisor gets SIGTERM when its parent dies (PR_SET_PDEATHSIG), and so does every child of
the supervisor if the supervisor itself is killed. Both are child subreapers: a process
whose parent died (a gunicorn worker, an rq work-horse) is reparented to them, told to stop
and reaped."""

import ctypes
import functools
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

from .. import settings
from ..config import api_key_file, auth_enabled, redis_url_file
from ..store import LOCAL_TENANT
from . import redis_server
from .api_key import ensure_local_key

GRACE = 10.0
"""Seconds, from the stop signal, that the API may take to stop and a worker to hand its job
back (one training step) before it gets a second SIGTERM."""

COLD_GRACE = 4.0
"""Seconds a worker may take to stop after the second SIGTERM (rq's cold shutdown: its
work-horse is killed and the job handed back from its latest checkpoint); then it is
killed."""

REDIS_GRACE = 4.0
"""Seconds Redis may take to sync its append-only file and exit; then it is killed."""

LEFTOVER_GRACE = 5.0
"""Seconds the anchor gives the processes of a supervisor that was killed before it kills
them. Each got SIGTERM at once, Redis too, so a job running then cannot hand itself back
(waiting longer would not help it): it resumes from its checkpoint next time."""

POLL = 0.5
"""Seconds between two checks of the children."""

SUPERVISOR = "--supervisor"
"""The argument that makes `python -m service.stack` the supervisor rather than its anchor."""

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36

log = logging.getLogger("gradserve")


def _load_prctl() -> Callable[..., int] | None:
    """libc's prctl (Linux), or None."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    return prctl


_prctl = _load_prctl()  # looked up here: a preexec_fn must do as little as it can


def _die_with(parent: int) -> None:
    """In a new child, before it runs its program: SIGTERM when `parent` (the thread that
    started it) dies, and exit at once if it already has."""
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def die_with_this_process() -> functools.partial:
    """A preexec_fn for subprocess.Popen: the child gets SIGTERM when this process dies."""
    return functools.partial(_die_with, os.getpid())


def become_subreaper() -> bool:
    """Adopt the orphans among this process's descendants (Linux): then none escapes."""
    return _prctl is not None and _prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def children_of(pid: int) -> list[int]:
    """The processes whose parent is `pid`, zombies included (read from /proc)."""
    found = []
    for entry in _proc():
        try:
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


def _proc() -> list[Path]:
    """/proc's process entries (none where there is no /proc)."""
    try:
        return [entry for entry in Path("/proc").iterdir() if entry.name.isdigit()]
    except OSError:
        return []


class Stack:
    """Redis (unless env has REDIS_URL), gunicorn and `workers` rq workers; `output` takes
    the children's stdout and stderr (default: this process's). With `adopts_orphans` (this
    process is a subreaper), processes reparented to it are stopped and reaped."""

    def __init__(
        self,
        workers: int,
        data_dir: Path,
        env: Mapping[str, str] | None = None,
        output: IO | None = None,
        adopts_orphans: bool = False,
    ) -> None:
        self.worker_count, self.data_dir, self.output = workers, data_dir, output
        self.env = dict(os.environ if env is None else env)
        # The API's metrics files (gunicorn_conf clears them at its start): this stack's own.
        self.env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(Path(data_dir).resolve() / "metrics"))
        self.adopts_orphans = adopts_orphans
        self.bundled: redis_server.Bundled | None = None
        self.redis: subprocess.Popen | None = None
        self.api: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self.orphans: dict[int, float] = {}
        """Adopted pids and when each was told to stop."""
        self.stopping = False

    def start(self) -> None:
        if self.env.get("REDIS_URL"):
            redis_server.wait_ready(self.env["REDIS_URL"])
        else:
            port = self.env.get("REDIS_PORT")
            self.bundled = redis_server.Bundled(
                self.data_dir,
                port=int(port) if port else None,
                log_file=self.data_dir / "redis.log",
                preexec_fn=die_with_this_process(),
            )
            self.redis = self.bundled.start()
            self.env["REDIS_URL"] = self.bundled.url
            log.info(
                "redis-server (pid %d) on %s, data in %s; its URL with credentials is in %s,"
                " an admin's in %s",
                self.redis.pid,
                redis_server.masked(self.bundled.url),
                self.bundled.dir,
                self.bundled.url_file,
                self.bundled.admin_url_file,
            )
        self._ensure_api_key()
        self.api = self._spawn_api()
        self.workers = [self._spawn_worker() for _ in range(self.worker_count)]
        log.info(
            "API on http://%s:%s, %d workers; `make worker` adds more (%s)",
            self.env.get("HOST", "127.0.0.1"),
            self.env.get("PORT", "8000"),
            self.worker_count,
            f"it reads {self.bundled.url_file}"
            if self.bundled
            else f"with REDIS_URL={redis_server.masked(self.env['REDIS_URL'])}",
        )

    def _ensure_api_key(self) -> None:
        """With AUTH on, a working key of tenant `local` in the data directory's `api-key`
        (its path is logged, never the key)."""
        try:
            auth = auth_enabled(self.env.get("GRADSERVE_AUTH", settings.AUTH))
        except ValueError as exc:
            raise RuntimeError(str(exc)) from None
        if not auth:
            log.warning("GRADSERVE_AUTH=off: every request is served as tenant %r", LOCAL_TENANT)
            return
        path = api_key_file(self.data_dir)
        ensure_local_key(self.env["REDIS_URL"], path)
        log.info(
            "the API key of tenant %r is in %s: export GRADSERVE_API_KEY=$(cat %s)",
            LOCAL_TENANT,
            path,
            path,
        )

    def _spawn_api(self) -> subprocess.Popen:
        return self._spawn(
            [sys.executable, "-m", "gunicorn", "-c", "python:service.api.gunicorn_conf"]
        )

    def _spawn(self, command: list[str]) -> subprocess.Popen:
        # Own sessions: Ctrl-C reaches this supervisor alone, which stops them in order.
        return subprocess.Popen(
            command,
            env=self.env,
            start_new_session=True,
            stdout=self.output,
            stderr=self.output,
            preexec_fn=die_with_this_process(),
        )

    def _spawn_worker(self) -> subprocess.Popen:
        return self._spawn([sys.executable, "-m", "service.worker"])

    def supervise(self) -> int:
        while not self.stopping:
            time.sleep(POLL)
            self._tend_orphans()
            if self.redis is not None and self.redis.poll() is not None and not self.stopping:
                log.error("redis-server exited (%s): starting it again", self.redis.returncode)
                self._adopt_orphans()
                try:  # it reloads its append-only file: no job is lost
                    self.redis = self.bundled.restart()
                except RuntimeError as exc:
                    self.redis = None
                    log.error("%s: stopping (a new `make run` picks a free port)", exc)
                    return 1
            if self.api is not None and self.api.poll() is not None and not self.stopping:
                log.error("gunicorn exited (%s): starting it again", self.api.returncode)
                self._adopt_orphans()  # its workers, which still hold the port
                self.api = self._spawn_api()
            for i, worker in enumerate(self.workers):
                if worker.poll() is not None and not self.stopping:
                    log.warning(
                        "worker %d exited (%s): starting another", worker.pid, worker.returncode
                    )
                    self._adopt_orphans()  # its work-horse, if it had one
                    self.workers[i] = self._spawn_worker()
        return 0

    def stop(self) -> None:
        """API and workers at once (a worker hands its job back at the next step), then
        Redis (it syncs its append-only file); each is killed if it lingers. At most
        GRACE + COLD_GRACE + REDIS_GRACE seconds."""
        self.stopping = True
        self._adopt_orphans()
        for process in [self.api, *self.workers]:
            _signal(process, signal.SIGTERM)
        warm = time.monotonic() + GRACE
        _wait(self.api, warm)
        for worker in self.workers:
            if not _wait(worker, warm, kill=False):
                _signal(worker, signal.SIGTERM)  # again: rq's cold shutdown kills its horse
        cold = time.monotonic() + COLD_GRACE
        for worker in self.workers:
            _wait(worker, cold)
        self._adopt_orphans()  # a horse whose worker was killed: before Redis goes
        self._tend_orphans(until=cold)
        if self.redis is not None:
            _signal(self.redis, signal.SIGTERM)
            _wait(self.redis, time.monotonic() + REDIS_GRACE)
        self._adopt_orphans()
        self._tend_orphans(until=time.monotonic())  # what is left now is killed
        if self.bundled is not None:
            self.bundled.close()

    def _adopt_orphans(self) -> None:
        """Tell the processes reparented to this one to stop (SIGTERM: a gunicorn worker
        finishes its request, a work-horse hands its job back)."""
        if not self.adopts_orphans:
            return
        known = {p.pid for p in (self.redis, self.api, *self.workers) if p is not None}
        for pid in children_of(os.getpid()):
            if pid not in known and pid not in self.orphans:
                log.warning("pid %d lost its parent: stopping it", pid)
                _kill(pid, signal.SIGTERM)
                self.orphans[pid] = time.monotonic()

    def _tend_orphans(self, until: float | None = None) -> None:
        """Reap the orphans that exited; kill those told to stop over COLD_GRACE ago. With
        `until`, wait for them till then, and kill those left."""
        while True:
            for pid, told in list(self.orphans.items()):
                now = time.monotonic()
                if _reaped(pid):
                    del self.orphans[pid]
                elif now - told > COLD_GRACE or (until is not None and now >= until):
                    _kill(pid, signal.SIGKILL)
            if until is None or not self.orphans or time.monotonic() > until + 1.0:
                return
            time.sleep(0.05)


def _signal(process: subprocess.Popen | None, sig: int) -> None:
    if process is not None and process.poll() is None:
        process.send_signal(sig)


def _wait(process: subprocess.Popen | None, deadline: float, kill: bool = True) -> bool:
    """Wait for a child until `deadline`; if it lingers and `kill`, kill it and its process
    group (what it started). Has it exited?"""
    if process is None:
        return True
    try:
        process.wait(max(0.0, deadline - time.monotonic()))
        return True
    except subprocess.TimeoutExpired:
        if not kill:
            return False
    log.warning("pid %d did not stop in time: killed", process.pid)
    _kill(-process.pid, signal.SIGKILL)  # its session's group: its own children too
    process.wait()
    return True


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _reaped(pid: int) -> bool:
    """Reap `pid` (a child) if it exited; has it (or was it already gone)?"""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:
        return True


def _on_stop_signals(handler: Callable[[int, object], None]) -> None:
    """Install `handler` for Ctrl-C, SIGTERM and SIGHUP; a signal ignored from the start
    (`nohup make run`) stays ignored."""
    for sig in STOP_SIGNALS:
        if signal.getsignal(sig) != signal.SIG_IGN:
            signal.signal(sig, handler)


def _on_hang_up(act: Callable[[], None]) -> None:
    """Call `act` (from a thread) when this process's controlling terminal hangs up. The
    kernel sends SIGHUP to the session leader alone then; a shell passes it on to its jobs,
    but a `make` in its place (`ssh -t host make run`) only waits for its child. Not under
    `nohup` (SIGHUP ignored): that stack is meant to outlive its terminal."""
    if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN:
        return
    try:
        terminal = os.open("/dev/tty", os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return  # no controlling terminal

    def watch() -> None:
        poller = select.poll()
        poller.register(terminal, select.POLLHUP)  # not POLLIN: keys typed do not wake it
        while not any(events & (select.POLLHUP | select.POLLERR) for _, events in poller.poll()):
            pass
        act()

    threading.Thread(target=watch, name="terminal", daemon=True).start()


def anchor() -> int:
    """The process `make run` starts: the supervisor's parent, and nothing else. It passes
    the stop signals on (and a hang-up of its terminal); once the supervisor is gone, it
    stops and reaps whatever the supervisor left (only if it was killed)."""
    become_subreaper()
    child = subprocess.Popen(
        [sys.executable, "-m", "service.stack", SUPERVISOR], preexec_fn=die_with_this_process()
    )

    def forward(signum: int, frame: object = None) -> None:
        if child.returncode is None:  # not reaped: its pid is still its own
            _kill(child.pid, signum)

    _on_hang_up(lambda: forward(signal.SIGHUP))
    _on_stop_signals(forward)
    status = child.wait()
    deadline = time.monotonic() + LEFTOVER_GRACE
    while left := [pid for pid in children_of(os.getpid()) if not _reaped(pid)]:
        if time.monotonic() > deadline:
            log.warning("killing %d processes left by the supervisor", len(left))
            for pid in left:
                _kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    return status if status >= 0 else 128 - status


def supervisor() -> int:
    workers = int(os.environ.get("WORKERS", os.cpu_count() or 1))
    data_dir = redis_url_file().parent.resolve()
    stack = Stack(workers, data_dir, adopts_orphans=become_subreaper())

    def request_stop(signum: int, frame: object) -> None:
        stack.stopping = True

    _on_stop_signals(request_stop)
    status = 1
    try:
        stack.start()
        status = stack.supervise()
    except RuntimeError as exc:
        log.error("%s", exc)
    finally:
        log.info("stopping")
        stack.stop()
    return status


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = sys.argv[1:] if argv is None else argv
    sys.exit(supervisor() if SUPERVISOR in args else anchor())


if __name__ == "__main__":
    main()
