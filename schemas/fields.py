"""Fields that load JSON as it was sent: no strings read as numbers, no per-item work on
arrays that may hold 10^5 items (the engine checks those in bulk)."""

import math
from typing import Any

from marshmallow import fields


class Number(fields.Float):
    """A finite JSON number (an int or a float; not a string, not a bool), loaded as is."""

    def _validated(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.make_error("invalid", input=value)
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an int beyond floats
            finite = False
        if not finite:
            raise self.make_error("special")
        return value


class Integer(fields.Integer):
    """A JSON integer (not 1.0, not "1", not true)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)


class BulkList(fields.List):
    """A JSON array, documented as a list of `cls_or_instance` but loaded and dumped as is:
    only the container is checked here, the items in bulk by the engine."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> list:
        if not isinstance(value, list):
            raise self.make_error("invalid")
        return value

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> list | None:
        return value


class BulkDict(fields.Dict):
    """A JSON object, documented as a mapping of strings to `values` but loaded and dumped
    as is (a graph's result holds one entry per node)."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> dict:
        if not isinstance(value, dict):
            raise self.make_error("invalid")
        return value

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> dict | None:
        return value
