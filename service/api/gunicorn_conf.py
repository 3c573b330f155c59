"""gunicorn's configuration for the API: `gunicorn -c python:service.api.gunicorn_conf`.

Environment: HOST (127.0.0.1; 0.0.0.0 in a container; loopback only with GRADSERVE_AUTH=off),
PORT (8000), WEB_CONCURRENCY (worker processes; default 2 per core + 1, as gunicorn's docs
advise)."""

import os

from service.config import auth_enabled, load_config, open_binds

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", 2 * (os.cpu_count() or 1) + 1))
worker_class = "sync"  # requests are short and CPU-bound; large graphs go to the queue
timeout = 120  # seconds: reading and validating a 32 MiB, 500,000-node graph fits well within
graceful_timeout = 30
keepalive = 5
max_requests = 5000  # recycle workers now and then, jittered so they do not all restart at once
max_requests_jitter = 500
wsgi_app = "service.api:create_app()"
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None  # "" turns it off
errorlog = "-"
proc_name = "gradserve-api"
control_socket_disable = True  # no gunicornc here; several stacks may share a machine


def on_starting(server: object) -> None:
    """Refuse to serve without keys (AUTH off) anywhere but on loopback: gunicorn prints the
    message and exits with status 1."""
    try:
        auth = auth_enabled(load_config()["AUTH"])
    except ValueError as exc:
        raise RuntimeError(str(exc)) from None
    binds = open_binds(server.cfg.bind)  # type: ignore[attr-defined]
    if binds and not auth:
        raise RuntimeError(
            f"GRADSERVE_AUTH=off serves every request without a key, so the API binds only "
            f"loopback addresses (127.0.0.1, ::1, localhost), not {', '.join(binds)}: set "
            f"HOST=127.0.0.1, or turn AUTH on and give clients keys (python -m service.keys)"
        )
