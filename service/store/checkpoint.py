"""A training checkpoint as stored: its float vectors (parameters, optimizer moments) as raw
float64 bytes, everything else in a small JSON envelope.

A 300,000-parameter Adam checkpoint is 7 MB this way, written in a few milliseconds, where
JSON text took 17 MB and over half a second. Exact: the bytes are the floats. A checkpoint
stored as JSON text (format 1, before this one) still reads.

Layout (format 2): MAGIC, the format byte, the envelope's length (4 bytes, big-endian), the
envelope (UTF-8 JSON: the checkpoint with each float vector replaced by
`{"$f64": length, "as": "array" or "list"}`), then the vectors' bytes (little-endian
float64) one after the other, in the envelope's order.
"""

import struct
from typing import Any

import numpy as np

from ..strictjson import dumps, loads

MAGIC = b"\x93GSCK"  # never the start of JSON text
FORMAT = 2
FLOAT64 = np.dtype("<f8")
_HEAD = struct.Struct(">BI")  # the format, the envelope's length


class BadCheckpoint(ValueError):
    """Stored bytes that are not a checkpoint of a known format."""


def encode(checkpoint: dict[str, Any]) -> bytes:
    """The stored form of a checkpoint whose vectors are numpy arrays or lists of floats."""
    vectors: list[bytes] = []

    def pack(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: pack(item) for key, item in value.items()}
        if isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind == "f":
            vectors.append(value.astype(FLOAT64, copy=False).tobytes())
            return {"$f64": len(value), "as": "array"}
        if isinstance(value, list) and value and all(type(v) is float for v in value):
            vectors.append(np.array(value, dtype=FLOAT64).tobytes())
            return {"$f64": len(value), "as": "list"}
        return value

    envelope = dumps(pack(checkpoint)).encode()
    return b"".join([MAGIC, _HEAD.pack(FORMAT, len(envelope)), envelope, *vectors])


def decode(data: bytes) -> dict[str, Any]:
    """A stored checkpoint read back: arrays stay arrays, lists lists."""
    if data[:1] == b"{":
        return loads(data)  # format 1: JSON text
    if data[: len(MAGIC)] != MAGIC:
        raise BadCheckpoint("not a stored checkpoint")
    start = len(MAGIC) + _HEAD.size
    fmt, length = _HEAD.unpack(data[len(MAGIC) : start])
    if fmt != FORMAT:
        raise BadCheckpoint(f"checkpoint format {fmt} is not known (only {FORMAT})")
    offset = start + length
    buffer = memoryview(data)

    def unpack(value: Any) -> Any:
        nonlocal offset
        if isinstance(value, dict) and "$f64" in value:
            count = value["$f64"]
            vector = np.frombuffer(buffer, FLOAT64, count, offset).astype(np.float64)
            offset += count * FLOAT64.itemsize
            return vector if value["as"] == "array" else vector.tolist()
        if isinstance(value, dict):
            return {key: unpack(item) for key, item in value.items()}
        return value

    checkpoint = unpack(loads(bytes(buffer[start : start + length])))
    if offset != len(data):
        raise BadCheckpoint("the checkpoint's vectors do not fill its bytes exactly")
    return checkpoint
