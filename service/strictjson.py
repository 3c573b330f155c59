"""Strict JSON, the one dialect every process speaks (HTTP bodies, Redis records, queued
documents): no NaN or Infinity tokens in or out."""

import json
from typing import Any

import orjson


class NonFiniteToken(json.JSONDecodeError):
    """NaN, Infinity or -Infinity in a body: Python reads them, JSON has no such tokens."""

    def __str__(self) -> str:
        return self.msg


def reject_constant(token: str) -> Any:
    raise NonFiniteToken(f"{token} is not JSON (numbers must be finite)", token, 0)


def loads(data: str | bytes) -> Any:
    """json.loads that refuses NaN, Infinity and -Infinity (Python's accepts them)."""
    return json.loads(data, parse_constant=reject_constant)


def dumps(value: Any) -> str:
    """Compact JSON; a NaN or an infinity is a bug to raise about, never a token to write."""
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


def fast_dumps(value: Any) -> bytes:
    """dumps at C speed, for what the service computed itself (a graph's result): orjson's
    compact JSON, each float in its shortest form that reads back the same (`1e-7`, where
    dumps writes `1e-07`). orjson writes a NaN or an infinity as null: text with a null in
    it is made by dumps instead, which raises for those (and writes a real null)."""
    text = orjson.dumps(value)
    return text if b"null" not in text else dumps(value).encode()


def fast_loads(data: str | bytes) -> Any:
    """loads at C speed, for JSON this service wrote itself (Redis records): orjson reads
    what it can (it refuses NaN and Infinity too), the standard library the rest (integers
    beyond 64 bits), so the result is loads'."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return loads(data)
