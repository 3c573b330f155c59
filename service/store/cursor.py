"""The cursor of a page of jobs: the (creation time, id) of the page's last job, opaque."""

import base64
import binascii

from ..errors import InvalidParameter
from .ids import ID_PATTERN


def encode_cursor(score: float, job_id: str) -> str:
    return base64.urlsafe_b64encode(f"{score:.0f}:{job_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        score, job_id = raw.split(":")
        if ID_PATTERN.fullmatch(job_id):
            return int(score), job_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        pass
    raise InvalidParameter("cursor", "not a cursor this API gave out")
