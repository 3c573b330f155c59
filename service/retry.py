"""One way to ride out a short outage: try again until a deadline."""

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def retry(
    call: Callable[[], T],
    errors: tuple[type[BaseException], ...],
    patience: float,
    pause: float = 0.5,
) -> T:
    """call(), tried again every `pause` seconds while it raises one of `errors`, for up to
    `patience` seconds; after that the last of those errors propagates."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return call()
        except errors:
            if time.monotonic() > deadline:
                raise
            time.sleep(pause)
