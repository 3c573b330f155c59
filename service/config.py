"""The configuration: `service.settings`, then the environment, then the caller's mapping.

A plain dict, so every process reads it the same way (the API copies it into Flask's
`app.config`; the workers and the stack never load Flask)."""

import json
import os
from collections.abc import Mapping
from typing import Any

from . import settings

ENV_PREFIX = "GRADSERVE_"

Config = dict[str, Any]


def load_config(overrides: Mapping[str, Any] | None = None) -> Config:
    """Defaults from service.settings; `REDIS_URL` and `GRADSERVE_<NAME>` environment
    variables (values read as JSON when they are JSON: GRADSERVE_MAX_STEPS=5000 is a
    number, as Flask's `from_prefixed_env` reads them); then `overrides`."""
    config = {name: getattr(settings, name) for name in dir(settings) if name.isupper()}
    if os.environ.get("REDIS_URL"):
        config["REDIS_URL"] = os.environ["REDIS_URL"]
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


def limits(config: Mapping[str, Any]) -> dict[str, int | None]:
    """The limits engine.spec.normalize_spec enforces."""
    return {
        "max_steps": config["MAX_STEPS"],
        "max_parameters": config["MAX_PARAMETERS"],
        "max_samples": config["MAX_SAMPLES"],
    }
