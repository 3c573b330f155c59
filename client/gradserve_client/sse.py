"""Server-Sent Events (the WHATWG event-stream format), read from a streamed response."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class RawEvent:
    event: str
    data: str
    id: str | None


def parse(chunks: Iterable[bytes]) -> Iterator[RawEvent]:
    """The events of an event stream, as its bytes arrive. A blank line ends an event;
    comments (`: keep-alive`) and an event without data are skipped; an event cut off by
    the end of the stream is dropped, as the standard says."""
    partial: list[bytes] = []  # a line's bytes so far (a large event comes in many chunks)
    event, data, event_id = "", [], None
    for chunk in chunks:
        *lines, rest = chunk.split(b"\n")
        if lines:
            lines[0] = b"".join(partial) + lines[0]
            partial = []
        partial.append(rest)
        for raw in lines:
            line = raw.removesuffix(b"\r").decode("utf-8", errors="replace")
            if not line:
                if data:
                    yield RawEvent(event or "message", "\n".join(data), event_id)
                event, data, event_id = "", [], None
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
            elif name == "id" and "\0" not in value:
                event_id = value
