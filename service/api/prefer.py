"""The `Prefer` request header (RFC 7240): `respond-async`, `wait=N` and `return=minimal`.

`wait=N` holds the answer of POST /v1/jobs, GET /v1/jobs/{id}, POST /v1/graphs and GET
/v1/graphs/{id} up to N seconds (at most MAX_WAIT) until the job or graph has finished,
then answers with its state then. A wait the server does not honour (a malformed N, 0, or
this process already holding MAX_EVENT_STREAMS requests open) is ignored, as RFC 7240 lets
it be: the answer comes at once, without `Preference-Applied: wait`."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from flask import Response, current_app, request

from .extensions import services

T = TypeVar("T")


def preferences() -> dict[str, str | None]:
    """The request's preferences by lower-cased name (`wait` -> "10"; parameters after `;`
    are ignored); the first of a name wins, as RFC 7240 says."""
    found: dict[str, str | None] = {}
    for header in request.headers.getlist("Prefer"):
        for item in header.split(","):
            name, _, value = item.split(";")[0].partition("=")
            name = name.strip().lower()
            if name and name not in found:
                found[name] = value.strip().strip('"') if value else None
    return found


def prefers_async() -> bool:
    return "respond-async" in preferences()


def prefers_minimal() -> bool:
    """`return=minimal`: a graph's result as its summary (output, value, nodes)."""
    return preferences().get("return") == "minimal"


def wait_seconds() -> int | None:
    """The seconds `Prefer: wait=N` asks for, cut to MAX_WAIT (None: no usable wait)."""
    value = preferences().get("wait")
    if value is None or not value.isdigit() or int(value) == 0:
        return None
    return min(int(value), current_app.config["MAX_WAIT"])


@contextmanager
def waiting() -> Iterator[int | None]:
    """The wait to honour (None: none), holding one of the process's places for requests
    held open (MAX_EVENT_STREAMS) meanwhile."""
    seconds = wait_seconds()
    notifier = services().notifier
    if seconds is None or not notifier.acquire(current_app.config["MAX_EVENT_STREAMS"]):
        yield None
        return
    try:
        yield seconds
    finally:
        notifier.release()


def wait_until_finished(
    key: str, read: Callable[[], T], finished: Callable[[T], bool], seconds: float
) -> T:
    """read() again whenever `key` changes until finished(value) or `seconds` pass."""
    return services().notifier.wait_for(key, read, finished, seconds)


def applied(response: Response, *names: str) -> Response:
    """Say which preferences were honoured (`Preference-Applied`); the answer depends on
    `Prefer` (`Vary`)."""
    if names:
        response.headers["Preference-Applied"] = ", ".join(names)
    response.vary.add("Prefer")
    return response
