"""Reads shared by the streams of one process: when a change wakes 100 streams of a job at
once, one of them reads the job (and the same page of its history) from Redis and the
others take its answer, instead of 100 round trips and 100 encodings of the same steps.

A waiter that woke at time t may take only a read that started at t or later: that read
sees every change made before the wake."""

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

MAX_ENTRIES = 4096
"""Reads remembered at most; older ones are forgotten first (they are fresh for a moment)."""


class _Read:
    __slots__ = ("started", "ended", "done", "value", "error")

    def __init__(self) -> None:
        self.started = self.ended = time.monotonic()
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


class SharedReads:
    def __init__(self) -> None:
        self._reads: dict[Hashable, _Read] = {}

    def read(self, key: Hashable, since: float, fn: Callable[[], Any]) -> tuple[Any, float]:
        """fn()'s value, or that of a read of `key` started at `since` or later (in flight:
        waited for); and when the read it comes from had its answer (a read that must
        come after this one passes it as its `since`)."""
        shared = self._reads.get(key)
        if shared is not None and shared.started >= since:
            shared.done.wait()
            if shared.error is not None:
                raise shared.error
            return shared.value, shared.ended
        mine = _Read()
        if len(self._reads) >= MAX_ENTRIES:
            self._forget_oldest()
        self._reads[key] = mine
        try:
            mine.value = fn()
        except BaseException as error:
            mine.error = error
            raise
        finally:
            mine.ended = time.monotonic()
            mine.done.set()
        return mine.value, mine.ended

    def _forget_oldest(self) -> None:
        for key, _ in sorted(self._reads.items(), key=lambda item: item[1].started)[
            : MAX_ENTRIES // 2
        ]:
            self._reads.pop(key, None)
