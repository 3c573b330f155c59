"""The client: one object per API, its endpoints grouped by resource."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from ._version import __version__
from .graphs import Graphs
from .jobs import Jobs
from .models import Models
from .transport import RetryPolicy, Transport

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 30.0
"""Seconds to connect and to wait for each answer (a held `Prefer: wait` adds its own)."""


class Webhooks:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def secret(self) -> str:
        """Your tenant's webhook signing secret (`whsec_...`)."""
        return self._t.json("GET", "/v1/webhooks/secret")["secret"]


class Client:
    """gradserve's HTTP API from Python.

    >>> with Client("http://127.0.0.1:8000", api_key) as gs:
    ...     job = gs.jobs.wait(gs.jobs.create({"steps": 50})["id"])
    ...     gs.models.predict(job["model_id"], [[1.0, -0.5]])

    Errors raise gradserve_client.errors' exceptions, each keeping the problem document.
    429 and 503 answers are retried after their Retry-After (at most `retry.attempts`
    times and `retry.max_wait` seconds in all) for GET, DELETE and job submissions (each
    sent with an Idempotency-Key), never for other POSTs."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        *,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._transport = Transport(
            base_url, api_key, timeout, retry or RetryPolicy(), f"gradserve-client/{__version__}"
        )
        self.jobs = Jobs(self._transport)
        self.graphs = Graphs(self._transport)
        self.models = Models(self._transport)
        self.webhooks = Webhooks(self._transport)

    @property
    def base_url(self) -> str:
        return self._transport.base_url

    def health(self) -> dict[str, Any]:
        """Liveness: {"status": "ok"} while the API process serves."""
        return self._transport.json("GET", "/healthz")

    def ready(self) -> dict[str, Any]:
        """Readiness: {"status": "ready"} while Redis answers (else Unavailable)."""
        return self._transport.json("GET", "/readyz")

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.base_url!r})"
