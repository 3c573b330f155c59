"""The configuration: `service.settings`, then the environment, then the caller's mapping."""

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Config

from . import settings

ENV_PREFIX = "GRADSERVE"


def load_config(overrides: Mapping[str, Any] | None = None, into: Config | None = None) -> Config:
    """Defaults from service.settings; `REDIS_URL` (else the URL `make run` wrote for its
    bundled Redis) and `GRADSERVE_<NAME>` environment variables (values read as JSON:
    GRADSERVE_MAX_STEPS=5000); then `overrides`."""
    config = into if into is not None else Config(os.getcwd())
    config.from_object(settings)
    config["REDIS_URL"] = os.environ.get("REDIS_URL") or local_redis_url() or config["REDIS_URL"]
    config.from_prefixed_env(ENV_PREFIX)
    config.update(overrides or {})
    return config


def redis_url_file(data_dir: str | Path | None = None) -> Path:
    """Where `make run` keeps its bundled Redis's URL, credentials included (mode 0600):
    `redis-url` in its data directory, `$GRADSERVE_DATA_DIR` (./var by default)."""
    return Path(data_dir or os.environ.get("GRADSERVE_DATA_DIR") or "var") / "redis-url"


def local_redis_url() -> str | None:
    """The URL in redis_url_file(), if `make run` wrote one here: `make worker` and the admin
    commands on the machine of a stack find its Redis by it when REDIS_URL is unset."""
    try:
        return redis_url_file().read_text().strip() or None
    except OSError:
        return None


def limits(config: Mapping[str, Any]) -> dict[str, int | None]:
    """The limits engine.spec.normalize_spec enforces."""
    return {
        "max_steps": config["MAX_STEPS"],
        "max_parameters": config["MAX_PARAMETERS"],
        "max_samples": config["MAX_SAMPLES"],
    }
