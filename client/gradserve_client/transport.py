"""One requests.Session for one API: the key, the default timeout, errors turned into
exceptions, and retries with back-off where a retry cannot do a thing twice."""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass
from typing import Any

import requests

from . import errors

RETRY_STATUSES = frozenset({429, 503})
"""Answers that mean "not now": the server did nothing and says when to come back."""


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try again: at most `attempts` retries (`connection_attempts` of them
    after a failed connection: a server that is down should be said so soon), waiting at
    most `max_wait` seconds in all; each wait is the server's Retry-After, else
    `backoff * 2**n` with jitter."""

    attempts: int = 4
    connection_attempts: int = 2
    max_wait: float = 60.0
    backoff: float = 0.5

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after
        return self.backoff * 2**attempt * (0.5 + random.random() / 2)


NO_RETRIES = RetryPolicy(attempts=0, connection_attempts=0)


def retryable(method: str, headers: dict[str, str]) -> bool:
    """GET and DELETE mean the same the second time; a POST only with an Idempotency-Key
    (POST /v1/jobs: the server answers a repeat with the job the first one made)."""
    return method in ("GET", "HEAD", "DELETE") or "Idempotency-Key" in headers


def reason(exc: requests.RequestException) -> str:
    """The innermost cause of a failed request, in a few words ("Connection refused")."""
    if isinstance(exc, requests.Timeout):
        return "no answer in time"
    found = re.search(r"\[Errno -?\d+\] ([^'\")]+)", str(exc))
    return found.group(1) if found else str(exc)


class Transport:
    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        timeout: float | tuple[float, float],
        retry: RetryPolicy,
        user_agent: str,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retry = retry
        self.session = requests.Session()
        self.session.headers["User-Agent"] = user_agent
        self.session.headers["Accept"] = "application/json"
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"

    def close(self) -> None:
        self.session.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        extra_timeout: float = 0.0,
        stream: bool = False,
        **kwargs: Any,
    ) -> requests.Response:
        """The response to `method path`, a 2xx; an APIError (or APIConnectionError) when it
        is not, after retrying 429 and 503 answers and dropped connections of requests that
        may be repeated. `extra_timeout` lengthens the read timeout (a held `Prefer: wait`)."""
        headers = dict(headers or {})
        policy = self.retry if retryable(method, headers) else NO_RETRIES
        waited, attempt, connection_failures = 0.0, 0, 0
        while True:
            try:
                response = self.session.request(
                    method,
                    self.base_url + path,
                    headers=headers,
                    timeout=self._timeout(extra_timeout),
                    stream=stream,
                    **kwargs,
                )
            except requests.RequestException as exc:
                failure: errors.GradserveError = errors.APIConnectionError(
                    f"{method} {self.base_url}{path}: {reason(exc)}"
                )
                failure.__cause__ = exc
                retry_after = None
                connection_failures += 1
                if connection_failures > policy.connection_attempts:
                    raise failure from exc
            else:
                if response.ok:
                    return response
                failure = errors.from_response(response)
                if response.status_code not in RETRY_STATUSES:
                    raise failure
                retry_after = errors.retry_after(response)
                response.close()
            delay = policy.delay(attempt, retry_after)
            if attempt >= policy.attempts or waited + delay > policy.max_wait:
                raise failure
            time.sleep(delay)
            waited += delay
            attempt += 1

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        return response.json() if response.content else None

    def _timeout(self, extra: float) -> float | tuple[float, float]:
        if isinstance(self.timeout, tuple):
            return self.timeout[0], self.timeout[1] + extra
        return self.timeout + extra
