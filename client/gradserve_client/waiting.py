"""Waiting for a job or a graph to finish: GETs the server holds until then (`Prefer: wait`)."""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from typing import Any

from . import errors
from .transport import Transport

WAIT_CHUNK = 30
"""Seconds each `Prefer: wait` GET asks the server to hold (it may cap them lower)."""


def wait_for(
    transport: Transport,
    path: str,
    finished: Collection[str],
    timeout: float | None,
    prefer: Sequence[str] = (),
) -> dict[str, Any]:
    """The resource at `path` once its status is one of `finished`. Each GET asks the server
    to hold its answer until then (with the other preferences `prefer`), so a long wait
    costs a request every half minute; a server that answers at once is asked again after a
    growing pause. WaitTimeout (holding the last state) when `timeout` seconds pass first."""
    deadline = None if timeout is None else time.monotonic() + timeout
    pause = 0.05
    while True:
        hold = WAIT_CHUNK
        if deadline is not None:
            hold = max(0, min(hold, int(deadline - time.monotonic())))
        wanted = [*prefer, f"wait={hold}"] if hold else list(prefer)
        asked = time.monotonic()
        found = transport.json(
            "GET",
            path,
            headers={"Prefer": ", ".join(wanted)} if wanted else None,
            extra_timeout=hold,
        )
        if found["status"] in finished:
            return found
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            raise errors.WaitTimeout(f"{path} is still {found['status']} after {timeout} s", found)
        if not hold or now - asked < min(hold, 1):  # not held: poll, slower and slower
            time.sleep(pause if deadline is None else min(pause, deadline - now))
            pause = min(pause * 2, 1.0)
