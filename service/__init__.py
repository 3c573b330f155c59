"""gradserve's HTTP service: the Flask API, the rq worker tasks, and the Redis store."""

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask


def create_app(config: Mapping[str, Any] | None = None) -> "Flask":
    """service.app.create_app, imported only when called: the workers need no Flask app."""
    from .app import create_app as factory

    return factory(config)
