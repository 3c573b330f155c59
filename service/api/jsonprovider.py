"""Strict JSON both ways: no NaN or Infinity tokens in or out, and keys kept in order."""

import json
from typing import Any

from flask.json.provider import DefaultJSONProvider


class NonFiniteToken(json.JSONDecodeError):
    """NaN, Infinity or -Infinity in a body: Python reads them, JSON has no such tokens."""

    def __str__(self) -> str:
        return self.msg


def reject_constant(token: str) -> Any:
    raise NonFiniteToken(f"{token} is not JSON (numbers must be finite)", token, 0)


def loads(data: str | bytes) -> Any:
    """json.loads that refuses NaN, Infinity and -Infinity (Python's accepts them)."""
    return json.loads(data, parse_constant=reject_constant)


class StrictJSONProvider(DefaultJSONProvider):
    sort_keys = False  # a graph's values keep the order of its nodes

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        kwargs.setdefault("allow_nan", False)
        return super().dumps(obj, **kwargs)

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        kwargs.setdefault("parse_constant", reject_constant)
        return super().loads(s, **kwargs)
