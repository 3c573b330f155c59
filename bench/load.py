"""Load from wrk (Debian's `wrk`): keep-alive connections sending one request back to back,
from a C client that costs the machine little next to the server it measures."""

import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

WRK_HINT = "wrk is not installed: apt-get install wrk"


@dataclass(frozen=True)
class Load:
    rate: float  # requests a second
    requests: int
    failed: int  # non-2xx answers, socket errors and timeouts
    p50_ms: float
    p99_ms: float


def available() -> bool:
    return shutil.which("wrk") is not None


def script(method: str, body: bytes | None, headers: dict[str, str]) -> str:
    """wrk's Lua: the request (method, body, headers), sent as is on every connection."""
    lines = [f"wrk.method = {json.dumps(method)}"]
    if body is not None:
        lines.append(f"wrk.body = {json.dumps(body.decode())}")
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    return "\n".join(lines) + "\n"


def _ms(text: str, name: str) -> float:
    match = re.search(rf"^\s*{name}\s+([\d.]+)(us|ms|s)\b", text, re.M)
    if not match:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    return value * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def parse(output: str) -> Load:
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    failed = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", output))
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if errors:
        failed += sum(int(n) for n in errors.groups())
    return Load(rate, requests, failed, _ms(output, "50%"), _ms(output, "99%"))


def run(
    url: str,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    seconds: float = 5.0,
    connections: int = 16,
    threads: int = 2,
) -> Load:
    """wrk against `url` for `seconds` over `connections` connections."""
    with tempfile.TemporaryDirectory() as scratch:
        lua = Path(scratch) / "request.lua"
        lua.write_text(script(method, body, headers or {}))
        command = [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds:g}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            str(lua),
            url,
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
    return parse(done.stdout)
