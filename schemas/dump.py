"""A schema's dump without marshmallow's machinery per field and per object: `dumper(schema)`
walks the schema's fields once and gives a function that does what `schema.dump` does to
a dict (the declared fields only, each one's own `_serialize`, nested schemas and lists
recursively) at a fraction of its cost. It is for hot responses (a job polled many times a
second). Anything it does not know to do the same way (dump hooks, dump defaults, an
attribute path, a field kind other than nested and list) it leaves to marshmallow itself, so
the output is always `schema.dump`'s (tests/test_schemas.py holds the two together)."""

from collections.abc import Callable
from typing import Any

from marshmallow import Schema, fields, missing
from marshmallow.decorators import POST_DUMP, PRE_DUMP

Dump = Callable[[Any], Any]


def dumper(schema: Schema) -> Dump:
    """A function giving `schema.dump(obj)` for a dict `obj`."""
    if _has_dump_hooks(schema) or schema.many:
        return schema.dump
    steps = [_step(name, field) for name, field in schema.dump_fields.items()]

    def dump(obj: Any) -> Any:
        if not isinstance(obj, dict):
            return schema.dump(obj)
        out = {}
        for attr, key, serialize in steps:
            if attr in obj:
                out[key] = serialize(obj[attr], attr, obj)
        return out

    return dump


def _has_dump_hooks(schema: Schema) -> bool:
    hooks = schema._hooks
    return bool(hooks.get(PRE_DUMP) or hooks.get(POST_DUMP))


def _step(name: str, field: fields.Field) -> tuple[str, str, Callable[[Any, str, Any], Any]]:
    attr, key = field.attribute or name, field.data_key or name
    if field.dump_default is not missing or "." in attr:
        return attr, key, lambda value, attr, obj: field.serialize(attr, obj)
    return attr, key, _serializer(field)


def _serializer(field: fields.Field) -> Callable[[Any, str, Any], Any]:
    """What `field._serialize` does, with the nested and list kinds done by dumpers."""
    kind = type(field)
    if kind is fields.Nested:
        nested = dumper(field.schema)
        many = field.many or field.schema.many

        def dump_nested(value: Any, attr: str, obj: Any) -> Any:
            if value is None:
                return None
            return [nested(item) for item in value] if many else nested(value)

        return dump_nested
    if kind is fields.List:
        inner = _serializer(field.inner)

        def dump_list(value: Any, attr: str, obj: Any) -> Any:
            if value is None:
                return None
            return [inner(item, attr, obj) for item in value]

        return dump_list
    return field._serialize
