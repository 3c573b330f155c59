"""The API process (gunicorn, `service.api.gunicorn_conf`): the app factory, flask-smorest
fitted to problem+json, the one boundary where exceptions become responses, strict JSON,
and one blueprint per resource. The only package that imports Flask.

`create_app` is imported when first asked for: gunicorn's master reads its configuration
from this package, and must not import Flask, Redis and the rest before it forks the gevent
workers that patch them (gevent's `monkey.patch_all` wants to come first)."""

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
