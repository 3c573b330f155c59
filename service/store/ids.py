"""Ids and timestamps of the records the store keeps."""

import re
import uuid
from datetime import UTC, datetime

ID_PATTERN = re.compile(r"[0-9a-f]{32}")
"""A job, model or graph id: anything else is unknown without asking Redis."""


def new_id() -> str:
    return uuid.uuid4().hex


def now() -> str:
    """The time as RFC 3339 in UTC, to the millisecond."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
