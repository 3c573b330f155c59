"""A job's inline training data, kept apart from the job record: the job resource (every
poll, every page of the list) carries only its summary, and the worker reads the data
itself when a run starts."""

import hashlib
import json
import re
from typing import Any

import orjson

Json = dict[str, Any]


def canonical(data: Json) -> bytes:
    """The data as canonical JSON: `json.dumps(data, sort_keys=True, separators=(",", ":"))`
    byte for byte (keys sorted, no spaces, Python's shortest repr of each float). Stored as
    it is and served by GET /v1/jobs/{id}/data; its sha256 is in the summary, so the hash of
    that response's body is the summary's.

    orjson writes the same text in a twentieth of the time but for two spellings of
    floats, mended here: a number under 1e-4 in positional form (0.00001, Python's 1e-05)
    and a short exponent (1e-7, 1e16: Python's 1e-07, 1e+16). What orjson cannot write
    (integers beyond 64 bits, NaN) takes the standard library's way; tests hold the two to
    the same bytes."""
    try:
        text = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        text = b"null"
    if b"null" in text:  # orjson's NaN, or what it cannot write: as the standard library does
        return sorted_json(data)
    text = _TINY.sub(_python_repr, text)
    return _EXPONENT.sub(_python_exponent, text)


def sorted_json(value: Any) -> bytes:
    """`json.dumps(value, sort_keys=True, separators=(",", ":"))`: the canonical writing of
    any JSON value, as the standard library makes it (NaN refused)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


_TINY = re.compile(rb"0\.0000\d+")  # under 1e-4 in positional form, or the tail of a number
_EXPONENT = re.compile(rb"e(-?)(\d+)")  # the data holds no other e: keys x and y, numbers


def _python_repr(match: re.Match) -> bytes:
    text, at = match.string, match.start()
    if at and text[at - 1] in b"0123456789.":  # inside a longer number (10.00001)
        return match.group()
    return repr(float(match.group())).encode()


def _python_exponent(match: re.Match) -> bytes:
    return b"e" + (match.group(1) or b"+") + match.group(2).rjust(2, b"0")


def summary(data: Json, text: bytes) -> Json:
    """What the job resource says of inline data (`text` = canonical(data))."""
    x = data["x"]
    return {
        "samples": len(x),
        "features": len(x[0]),
        "sha256": hashlib.sha256(text).hexdigest(),
    }
