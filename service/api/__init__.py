"""The API process (gunicorn, `service.api.gunicorn_conf`): the app factory, flask-smorest
fitted to problem+json, the one boundary where exceptions become responses, strict JSON,
and one blueprint per resource. The only package that imports Flask."""

from .app import create_app

__all__ = ["create_app"]
