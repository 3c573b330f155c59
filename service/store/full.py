"""Redis at its memory ceiling (`maxmemory`, `noeviction`): it refuses writes that would
grow it and keeps everything it has. One exception class for it, whichever way it comes."""

from collections.abc import Iterator
from contextlib import contextmanager

from redis.exceptions import OutOfMemoryError, ResponseError

OOM_TEXT = "OOM command not allowed"
"""How Redis 6 quotes the refusal inside a Lua script's error (Redis 7 replies `OOM ...`,
which redis-py raises as OutOfMemoryError)."""


class StoreFull(OutOfMemoryError):
    """Redis refused a write: it is full. Nothing was written by the refused call."""

    def __init__(self) -> None:
        super().__init__("Redis is full (maxmemory reached): the write was refused")


def is_full(error: BaseException) -> bool:
    return isinstance(error, OutOfMemoryError) or (
        isinstance(error, ResponseError) and OOM_TEXT in str(error)
    )


@contextmanager
def refused_when_full() -> Iterator[None]:
    """Raise StoreFull for a refusal however Redis worded it (a Lua script's error on Redis
    6, a pipeline's annotated one quoting its command): a short message, one class."""
    try:
        yield
    except ResponseError as error:
        if is_full(error):
            raise StoreFull() from None
        raise
