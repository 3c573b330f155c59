"""What the hot path (api/hotpath.py) hands Flask with a request it began but does not
answer itself: who asked, what the rate limiter counted and read, and what came of it so
far. Flask's hooks take these instead of doing the work again, so a request is never
counted twice and a write is never repeated."""

from dataclasses import dataclass
from typing import Any

from flask import Response, request

KEY = "gradserve.handover"
"""Where in the WSGI environ the hot path leaves it."""


@dataclass(frozen=True)
class Handover:
    tenant: str
    key_id: str | None
    spent: Any = None  # ratelimit.Spent: what the request's tightest budget says, if counted
    read_ahead: dict[bytes, bytes] | None = None  # the record the limiter read with its count
    outcome: Response | Exception | None = None
    """A response to send (through the after-request hooks: rate limit headers, gzip), an
    error to answer as the app answers it, or None: the route runs."""


def handed_over() -> Handover | None:
    """The current request's handover, if the hot path began it."""
    return request.environ.get(KEY)
