"""A job's inline training data, kept apart from the job record: the job resource (every
poll, every page of the list) carries only its summary, and the worker reads the data
itself when a run starts."""

import hashlib
import json
from typing import Any

Json = dict[str, Any]


def canonical(data: Json) -> bytes:
    """The data as canonical JSON: keys sorted, no spaces, Python's shortest repr of each
    float. Stored as it is and served by GET /v1/jobs/{id}/data; its sha256 is in the
    summary, so the hash of that response's body is the summary's."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return text.encode()


def summary(data: Json, text: bytes) -> Json:
    """What the job resource says of inline data (`text` = canonical(data))."""
    x = data["x"]
    return {
        "samples": len(x),
        "features": len(x[0]),
        "sha256": hashlib.sha256(text).hexdigest(),
    }
