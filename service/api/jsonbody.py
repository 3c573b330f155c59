"""JSON request bodies, parsed strictly and defensively: no NaN or Infinity tokens, no
nesting deeper than MAX_JSON_DEPTH, no number of more than MAX_JSON_NUMBER_DIGITS digits
and no key twice in one object; each of those is a 400 naming its place.

The fast path is orjson (C speed, and as strict as JSON about NaN and Infinity) between
three screens that read the raw bytes at C speed: no run of number characters longer than
the digit limit, nesting within the limit, and as many ':' as orjson's own serialisation of
what it read (a duplicate key is dropped, and its ':' with it). A body the fast path cannot
vouch for (malformed, a hit of a screen, a backslash or a bracket in a string) takes the
exact path: the standard library's parser with hooks that note each duplicate key and long
number, then a walk that finds where each is, and where nesting passes the limit. A valid
body that only looked suspect parses there to the same document as on the fast path
(integers beyond 64 bits become floats on both, as orjson reads them)."""

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson

from .. import problems
from ..errors import JsonNotAccepted
from ..strictjson import reject_constant

MAX_ERRORS = 10
"""Places a JSON-not-accepted problem names at most."""

_NUMBER_CHARS = bytes(0x31 if b in b"+-.0123456789Ee" else 0x30 for b in range(256))
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}\\')
_AS_PARENTHESES = bytes.maketrans(b"[]{}", b"()()")  # orjson read it: each pair matches
SMALL_STRUCTURE = 4096
"""Brackets up to which the nesting is found by dropping pairs (numpy's setup costs more)."""

Path = tuple[Any, ...] | None
"""A place in the document, innermost last: (parent path, key), built only when named."""


Vouch = Callable[[bytes, Any], bool]
"""vouch(data, document): does a route that knows its body's shape vouch for the nesting
and the keys of `document`, read from `data` (which holds no backslash)?"""


def load_body(data: bytes, max_depth: int, max_digits: int, vouch: Vouch | None = None) -> Any:
    """The JSON document in `data`; JsonNotAccepted (400) naming each place beyond the
    limits, json.JSONDecodeError if it is not JSON. When `vouch` vouches for a document
    (api/graphbody.py: a large graph), the nesting and duplicate-key screens are spared:
    two passes over the body and a serialisation of the document."""
    if b"1" * (max_digits + 1) not in data.translate(_NUMBER_CHARS):
        try:
            document = orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # the exact path says what is wrong, as the standard parser words it
        else:
            if vouch is not None and b"\\" not in data and vouch(data, document):
                return document
            depth = _plain_depth(data)
            if depth is not None and depth <= max_depth and _keys_unique(data, document):
                return document
    return _exact(data, max_depth, max_digits)


def _plain_depth(data: bytes) -> int | None:
    """How deep valid JSON nests, when none of its strings holds a bracket, a quote or a
    backslash (None otherwise). Its quotes, brackets and backslashes in order: each string
    is then `""`, and what is left once they go are the brackets of its structure."""
    marks = data.translate(None, _NOT_STRUCTURE)
    if b"\\" in marks:
        return None
    brackets = marks.replace(b'""', b"")
    if b'"' in brackets:
        return None
    if len(brackets) <= SMALL_STRUCTURE:  # a pass in C per level, each drops the innermost pairs
        pairs, depth = brackets.translate(_AS_PARENTHESES), 0
        while pairs:
            inner = pairs.replace(b"()", b"")
            if len(inner) == len(pairs):
                return None  # not nested as JSON nests (orjson read it, so never)
            pairs, depth = inner, depth + 1
        return depth
    codes = np.frombuffer(brackets, np.uint8)
    steps = ((codes >> 1) & 1).astype(np.int8) * 2 - 1  # [ and { are +1, ] and } are -1
    return int(np.cumsum(steps, dtype=np.int32).max())


def _keys_unique(data: bytes, document: Any) -> bool:
    """No object of valid JSON without escapes (_plain_depth saw no backslash) has a key
    twice: its ':' (one per key, plus those inside strings) are all still there when orjson
    writes what it read (it never escapes ':')."""
    return data.count(b":") == orjson.dumps(document).count(b":")


class LongNumber:
    """A number token over the digit limit, left in the document to be found by the walk."""

    def __init__(self, token: str) -> None:
        self.digits = sum(c.isdigit() for c in token)


def _exact(data: bytes, max_depth: int, max_digits: int) -> Any:
    duplicates: dict[int, tuple[dict, str]] = {}  # id -> (the object, its repeated key)

    def object_from(pairs: list[tuple[str, Any]]) -> dict:
        obj = dict(pairs)
        if len(obj) < len(pairs):
            duplicates[id(obj)] = (obj, _first_repeated(pairs))
        return obj

    def number(parse: Any) -> Any:
        def read(token: str) -> Any:
            if len(token) > max_digits and sum(c.isdigit() for c in token) > max_digits:
                return LongNumber(token)
            return parse(token)

        return read

    try:
        document = json.loads(
            data,
            object_pairs_hook=object_from,
            parse_int=number(_integer),
            parse_float=number(float),
            parse_constant=reject_constant,
        )
    except RecursionError:  # deeper than Python's stack allows: far past the limit
        errors = [{"path": "", "message": _too_deep(max_depth)}]
    else:
        errors = _findings(document, duplicates, max_depth, max_digits)
    if errors:
        raise JsonNotAccepted(problems.summary(errors), errors)
    return document


def _integer(token: str) -> int | float:
    """An integer as orjson reads it: exact within 64 bits, a float beyond."""
    value = int(token)
    return value if -(2**63) <= value < 2**64 else float(value)


def _first_repeated(pairs: list[tuple[str, Any]]) -> str:
    seen = set()
    for key, _ in pairs:
        if key in seen:
            return key
        seen.add(key)
    raise ValueError("no key is repeated")


def _findings(
    document: Any, duplicates: dict[int, tuple[dict, str]], max_depth: int, max_digits: int
) -> list[dict[str, str]]:
    """The places past the limits, in document order (at most MAX_ERRORS)."""
    errors: list[dict[str, str]] = []
    stack: list[tuple[Path, Any, int]] = [(None, document, 0)]
    while stack and len(errors) < MAX_ERRORS:
        path, value, depth = stack.pop()
        if isinstance(value, LongNumber):
            message = f"a number of {value.digits} digits; at most {max_digits} are accepted"
            errors.append({"path": _spell(path), "message": message})
            continue
        if isinstance(value, dict):
            items: Any = value.items()
        elif isinstance(value, list):
            items = enumerate(value)
        else:
            continue
        if depth + 1 > max_depth:
            errors.append({"path": _spell(path), "message": _too_deep(max_depth)})
            continue
        if id(value) in duplicates:
            key = duplicates[id(value)][1]
            message = f"the key {key!r} appears more than once in this object"
            errors.append({"path": _spell((path, key)), "message": message})
        inner = [
            ((path, k), v, depth + 1) for k, v in items if isinstance(v, dict | list | LongNumber)
        ]
        stack.extend(reversed(inner))
    return errors


def _too_deep(max_depth: int) -> str:
    return f"nested more than {max_depth} levels deep; at most {max_depth} are accepted"


def _spell(path: Path) -> str:
    """A path as the API's errors spell them: keys and indexes joined by '/'."""
    parts = []
    while path is not None:
        path, key = path
        parts.append(str(key))
    return "/".join(reversed(parts))
