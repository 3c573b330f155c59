"""A small Server-Sent Events reader for the tests and the bench (the wire format of the
HTML standard: `field: value` lines, a blank line ends an event, `:` lines are comments)."""

import json
from collections.abc import Iterable, Iterator


def parse_events(lines: Iterable[str]) -> Iterator[dict]:
    """Events as {"event", "id", "data" (decoded JSON), "retry"}; comments as
    {"comment": text}."""
    fields: dict = {}
    data: list[str] = []
    for line in lines:
        if line == "":
            if data or fields:
                event = {"event": fields.get("event", "message"), "id": fields.get("id")}
                if "retry" in fields:
                    event["retry"] = int(fields["retry"])
                if data:
                    event["data"] = json.loads("\n".join(data))
                yield event
            fields, data = {}, []
            continue
        if line.startswith(":"):
            yield {"comment": line[1:].strip()}
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        else:
            fields[name] = value


def stream(session, path: str, last_event_id: int | None = None, timeout: float = 30):
    """GET an event stream with a requests session: the response (stream=True)."""
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    return session.get(path, headers=headers, stream=True, timeout=timeout)


def events_of(response) -> Iterator[dict]:
    """The events of a streamed response, as they arrive."""
    return parse_events(response.iter_lines(chunk_size=None, decode_unicode=True))
