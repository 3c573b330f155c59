"""`make run`'s own API key: one for tenant `local`, in the data directory's `api-key`
(mode 0600), kept across restarts while it works, made again when it does not (revoked, or
a Redis that never knew it)."""

import logging
from pathlib import Path

from ..store import LOCAL_TENANT, ApiKeys
from ..store.queue import connect
from .redis_server import write_private

log = logging.getLogger("gradserve")


def ensure_local_key(redis_url: str, path: Path) -> bool:
    """A working key of tenant `local` in `path`: True if one was made now, False if the
    one there works. The key itself never reaches the log."""
    keys = ApiKeys(connect(redis_url, timeout=5.0))
    try:
        if keys.authenticate(_read(path)) == LOCAL_TENANT:
            return False
        record, key = keys.create(LOCAL_TENANT)
    finally:
        keys.redis.close()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_private(path, key + "\n")
    log.info("made API key %s for tenant %r", record.id, LOCAL_TENANT)
    return True


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""
