"""The configuration: `service.settings`, then the environment, then the caller's mapping."""

import os
from collections.abc import Mapping
from typing import Any

from flask import Config

from . import settings

ENV_PREFIX = "GRADSERVE"


def load_config(overrides: Mapping[str, Any] | None = None, into: Config | None = None) -> Config:
    """Defaults from service.settings; `REDIS_URL` and `GRADSERVE_<NAME>` environment
    variables (values read as JSON: GRADSERVE_MAX_STEPS=5000); then `overrides`."""
    config = into if into is not None else Config(os.getcwd())
    config.from_object(settings)
    if os.environ.get("REDIS_URL"):
        config["REDIS_URL"] = os.environ["REDIS_URL"]
    config.from_prefixed_env(ENV_PREFIX)
    config.update(overrides or {})
    return config


def limits(config: Mapping[str, Any]) -> dict[str, int | None]:
    """The limits engine.spec.normalize_spec enforces."""
    return {
        "max_steps": config["MAX_STEPS"],
        "max_parameters": config["MAX_PARAMETERS"],
        "max_samples": config["MAX_SAMPLES"],
    }
