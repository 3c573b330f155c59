"""The client's exceptions: every API error keeps the RFC 9457 problem document the server
answered with (and the response), one class per status a caller handles differently."""

from __future__ import annotations

from typing import Any

import requests


class GradserveError(Exception):
    """Anything the client raises."""


class APIConnectionError(GradserveError):
    """The server could not be reached, or did not answer in time (after any retries)."""


class WaitTimeout(GradserveError, TimeoutError):
    """A job or graph had not finished when `jobs.wait`'s or `graphs.wait`'s timeout ran
    out; `.last` is its last state (`.job` too, as it was named first)."""

    def __init__(self, message: str, last: dict[str, Any]) -> None:
        super().__init__(message)
        self.last = self.job = last


class APIError(GradserveError):
    """The server answered with an error status; `.problem` is its problem document."""

    def __init__(
        self, status: int, problem: dict[str, Any], response: requests.Response | None = None
    ) -> None:
        self.status = status
        self.problem = problem
        self.response = response
        self.type: str = problem.get("type", "about:blank")
        self.title: str = problem.get("title", "")
        self.detail: str | None = problem.get("detail")
        super().__init__(f"{status} {self.title}" + (f": {self.detail}" if self.detail else ""))


class InvalidRequest(APIError):
    """400, 413, 415 or 422: the request itself is wrong; `.errors` names each bad place."""

    @property
    def errors(self) -> list[dict[str, str]]:
        """[{"path": "model/layers/0", "message": "..."}, ...]; empty when none is named."""
        return list(self.problem.get("errors") or [])


class Unauthorized(APIError):
    """401: no API key, or one that is not valid."""


class NotFound(APIError):
    """404: no such job, model or graph (or another tenant's)."""


class Conflict(APIError):
    """409: e.g. cancelling a job that has already finished."""


class _RetryAfter(APIError):
    @property
    def retry_after(self) -> float | None:
        """Seconds the server asked to wait (its Retry-After header), or None."""
        return retry_after(self.response)


class RateLimited(_RetryAfter):
    """429: over a rate limit, or over the tenant's cap on active jobs."""


class Unavailable(_RetryAfter):
    """503: the data store does not answer, or is full."""


class ServerError(APIError):
    """Any other 5xx."""


BY_STATUS: dict[int, type[APIError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    404: NotFound,
    409: Conflict,
    413: InvalidRequest,
    415: InvalidRequest,
    422: InvalidRequest,
    429: RateLimited,
    503: Unavailable,
}


def retry_after(response: requests.Response | None) -> float | None:
    """The Retry-After header in seconds (only the delay-seconds form: gradserve sends it)."""
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def from_response(response: requests.Response) -> APIError:
    """The exception for an error response, its problem document kept (a body that is not
    one, e.g. from a proxy, becomes a problem holding the status text)."""
    try:
        problem = response.json()
    except ValueError:
        problem = None
    if not isinstance(problem, dict):
        problem = {"title": response.reason or "HTTP error", "status": response.status_code}
        if response.text:
            problem["detail"] = response.text[:500]
    status = response.status_code
    cls = BY_STATUS.get(status) or (ServerError if status >= 500 else APIError)
    return cls(status, problem, response)
