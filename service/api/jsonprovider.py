"""Flask's JSON, made strict both ways (no NaN or Infinity tokens) and keeping key order."""

from typing import Any

from flask.json.provider import DefaultJSONProvider

from ..strictjson import reject_constant


class StrictJSONProvider(DefaultJSONProvider):
    sort_keys = False  # a graph's values keep the order of its nodes

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        kwargs.setdefault("allow_nan", False)
        return super().dumps(obj, **kwargs)

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        kwargs.setdefault("parse_constant", reject_constant)
        return super().loads(s, **kwargs)
