"""The configuration: `service.settings`, then the environment, then the caller's mapping.

A plain dict, so every process reads it the same way (the API copies it into Flask's
`app.config`; the workers and the stack never load Flask)."""

import ipaddress
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from . import settings

ENV_PREFIX = "GRADSERVE_"

Config = dict[str, Any]


def load_config(overrides: Mapping[str, Any] | None = None) -> Config:
    """Defaults from service.settings; `REDIS_URL` (else the URL `make run` wrote for its
    bundled Redis) and `GRADSERVE_<NAME>` environment variables (values read as JSON when
    they are JSON: GRADSERVE_MAX_STEPS=5000 is a number, as Flask's `from_prefixed_env`
    reads them); then `overrides`."""
    config = {name: getattr(settings, name) for name in dir(settings) if name.isupper()}
    config["REDIS_URL"] = os.environ.get("REDIS_URL") or local_redis_url() or config["REDIS_URL"]
    for key in sorted(os.environ):
        if key.startswith(ENV_PREFIX):
            config[key.removeprefix(ENV_PREFIX)] = _value(os.environ[key])
    config.update(overrides or {})
    return config


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text  # a plain string: GRADSERVE_QUEUE_NAME=jobs


def redis_url_file(data_dir: str | Path | None = None) -> Path:
    """Where `make run` keeps its bundled Redis's URL, credentials included (mode 0600):
    `redis-url` in its data directory, `$GRADSERVE_DATA_DIR` (./var by default)."""
    return Path(data_dir or os.environ.get("GRADSERVE_DATA_DIR") or "var") / "redis-url"


def api_key_file(data_dir: str | Path | None = None) -> Path:
    """Where `make run` keeps the API key of tenant `local` (mode 0600): `api-key` beside
    its Redis URL."""
    return redis_url_file(data_dir).with_name("api-key")


def local_redis_url() -> str | None:
    """The URL in redis_url_file(), if `make run` wrote one here: `make worker` and the admin
    commands on the machine of a stack find its Redis by it when REDIS_URL is unset."""
    try:
        return redis_url_file().read_text().strip() or None
    except OSError:
        return None


def limits(config: Mapping[str, Any]) -> dict[str, int | None]:
    """The limits engine.spec.normalize_spec enforces, and the `timeout` it fills in."""
    return {
        "max_steps": config["MAX_STEPS"],
        "max_parameters": config["MAX_PARAMETERS"],
        "max_samples": config["MAX_SAMPLES"],
        "max_work": config["MAX_JOB_WORK"],
        "max_memory": config["MAX_JOB_MEMORY"],
        "default_timeout": config["JOB_TIMEOUT_DEFAULT"],
        "max_timeout": config["MAX_JOB_TIMEOUT"],
    }


def auth_enabled(value: object) -> bool:
    """The AUTH setting as a bool: on/off, true/false, yes/no, 1/0 (any case)."""
    words = {"on": True, "true": True, "yes": True, "1": True}
    words |= {"off": False, "false": False, "no": False, "0": False}
    answer = words.get(str(value).strip().lower())
    if answer is None:
        raise ValueError(f"GRADSERVE_AUTH must be on or off, not {value!r}")
    return answer


METRICS_MODES = ("loopback", "token", "open", "off")
MIN_METRICS_TOKEN = 16


def metrics_access(config: Mapping[str, Any]) -> tuple[str, str | None]:
    """The METRICS setting and METRICS_TOKEN, checked: (mode, token or None)."""
    mode = str(config["METRICS"]).strip().lower()
    if mode not in METRICS_MODES:
        raise ValueError(
            f"GRADSERVE_METRICS must be one of {', '.join(METRICS_MODES)}, not {mode!r}"
        )
    token = config.get("METRICS_TOKEN")
    token = None if token in (None, "") else str(token)
    if token is not None and len(token) < MIN_METRICS_TOKEN:
        raise ValueError(
            f"GRADSERVE_METRICS_TOKEN must have at least {MIN_METRICS_TOKEN} characters"
        )
    if mode == "token" and token is None:
        raise ValueError("GRADSERVE_METRICS=token needs GRADSERVE_METRICS_TOKEN")
    return mode, token


def open_binds(binds: Iterable[str]) -> list[str]:
    """The addresses among gunicorn's `binds` that are not loopback only (127.0.0.0/8,
    ::1, localhost): an IP elsewhere, every interface, a unix socket, a file descriptor."""
    return [bind for bind in binds if not _is_loopback(bind)]


def _is_loopback(bind: str) -> bool:
    if bind.startswith("["):  # [::1]:8000
        host = bind[1:].partition("]")[0]
    elif bind.count(":") == 1:  # 127.0.0.1:8000, localhost:8000 (not unix:/path: no IP)
        host = bind.partition(":")[0]
    else:  # a bare host, or a bare IPv6 address
        host = bind
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
