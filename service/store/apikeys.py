"""API keys: each belongs to one tenant and is stored only as a hash.

A key is `gs_<key id>_<secret>`: `gs_` (a greppable prefix, as secret scanners like), a
public key id of 12 hex digits (the lookup: one hash per id in Redis, no scan), and 256
random bits (`secrets.token_urlsafe(32)`: 43 characters of A-Z a-z 0-9 _ -). Redis keeps the
sha256 of the whole key, the tenant, the creation time and when it was revoked; never the
key. The key is shown once, when it is made.

Checking a key costs one Redis round trip. The API remembers a valid key for
`cache_seconds` (KEY_CACHE_SECONDS, 5 s) in each process, so a client's requests in a burst
cost one lookup: a revoked key is refused by every process at most that long after the
revoke (at once with 0). Only valid keys are remembered, by the hash of the whole key: a
refusal is never cached, and a wrong secret never meets a remembered one. Every refusal
(malformed, unknown id, wrong secret, revoked) takes the same path: a hash and a
constant-time comparison, then one answer, "not a valid key"."""

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

import redis

from .ids import now
from .keys import Keys

KEY_PATTERN = re.compile(r"gs_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
"""A well-formed key: its id, then its secret (the length `token_urlsafe(32)` gives)."""

TENANT_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
"""A tenant's name: 1 to 64 characters, lower-case letters, digits and `_ . -`."""

LOCAL_TENANT = "local"
"""The tenant of `make run`'s own key, and of every request when AUTH is off."""

CACHE_SIZE = 10_000
"""Valid keys a process remembers at most (all are forgotten when it is full)."""

_NO_SUCH_KEY = hashlib.sha256(b"no such key").hexdigest().encode()
"""What a refused key is compared with when there is no stored hash to compare it with."""


def digest(key: str) -> bytes:
    """The stored form of a key: sha256, hex. A key carries 256 random bits, so a fast hash
    is right (as for GitHub's tokens): no dictionary or brute force reaches a preimage, and a
    slow password hash (bcrypt, argon2) would only add its cost to every request."""
    return hashlib.sha256(key.encode("utf-8", "replace")).hexdigest().encode()


@dataclass(frozen=True)
class ApiKey:
    """A key's record, as `list` shows it: never the key, never its hash."""

    id: str
    tenant: str
    created_at: str
    revoked_at: str | None


class ApiKeys:
    def __init__(
        self, connection: redis.Redis, prefix: str = "gradserve", cache_seconds: float = 0.0
    ) -> None:
        self.redis = connection
        self.keys = Keys(prefix)
        self.cache_seconds = cache_seconds
        self._valid: dict[bytes, tuple[str, float]] = {}  # hash -> (tenant, until: monotonic)

    def create(self, tenant: str) -> tuple[ApiKey, str]:
        """A new key for `tenant`: its record, and the key itself (to be shown once)."""
        if not TENANT_PATTERN.fullmatch(tenant):
            raise ValueError(
                f"a tenant is 1 to 64 of a-z 0-9 _ . - starting with a letter or digit,"
                f" not {tenant!r}"
            )
        while True:
            key_id = secrets.token_hex(6)
            key = f"gs_{key_id}_{secrets.token_urlsafe(32)}"
            record = ApiKey(key_id, tenant, now(), None)
            fields = {"hash": digest(key), "tenant": tenant, "created_at": record.created_at}
            with self.redis.pipeline() as pipe:
                try:
                    pipe.watch(self.keys.api_key(key_id))
                    if pipe.exists(self.keys.api_key(key_id)):
                        continue  # 48 bits: a clash is rare, but never overwrite a key
                    pipe.multi()
                    pipe.hset(self.keys.api_key(key_id), mapping=fields)
                    pipe.zadd(self.keys.api_keys(), {key_id: time.time_ns() // 1000})
                    pipe.execute()
                except redis.WatchError:
                    continue
            return record, key

    def authenticate(self, key: str) -> str | None:
        """The tenant of `key`, or None if it is not a valid key (malformed, unknown,
        wrong, revoked: told apart by nobody). A key found valid within `cache_seconds`
        is not looked up again."""
        hashed = digest(key)
        remembered = self._valid.get(hashed)
        if remembered is not None and remembered[1] > time.monotonic():
            return remembered[0]
        match = KEY_PATTERN.fullmatch(key)
        stored = tenant = revoked = None
        if match:  # the format is public; only a well-formed key is worth a round trip
            stored, tenant, revoked = self.redis.hmget(
                self.keys.api_key(match.group(1)), "hash", "tenant", "revoked_at"
            )
        same = hmac.compare_digest(hashed, stored or _NO_SUCH_KEY)
        if not (same and match and stored and tenant) or revoked:
            self._valid.pop(hashed, None)
            return None
        if self.cache_seconds > 0:
            if len(self._valid) >= CACHE_SIZE:
                self._valid.clear()
            self._valid[hashed] = (tenant.decode(), time.monotonic() + self.cache_seconds)
        return tenant.decode()

    @staticmethod
    def key_id(key: str) -> str | None:
        """The public id in a well-formed key (None for anything else): what the rate
        limiter counts a valid key's requests by."""
        match = KEY_PATTERN.fullmatch(key)
        return match.group(1) if match else None

    def get(self, key_id: str) -> ApiKey | None:
        if not re.fullmatch(r"[0-9a-f]{12}", key_id):
            return None
        raw = self.redis.hgetall(self.keys.api_key(key_id))
        return _record(key_id, raw) if raw else None

    def list(self) -> list[ApiKey]:
        """Every key's record, oldest first."""
        ids = [member.decode() for member in self.redis.zrange(self.keys.api_keys(), 0, -1)]
        with self.redis.pipeline(transaction=False) as pipe:
            for key_id in ids:
                pipe.hgetall(self.keys.api_key(key_id))
            found = pipe.execute()
        return [_record(key_id, raw) for key_id, raw in zip(ids, found, strict=True) if raw]

    def revoke(self, key_id: str) -> ApiKey | None:
        """Revoke a key (it stops working at once; its record stays, for `list`): its
        record, or None if there is no such key. Revoking it again keeps the first time."""
        record = self.get(key_id)
        if record is None:
            return None
        self.redis.hsetnx(self.keys.api_key(key_id), "revoked_at", now())
        return self.get(key_id)


def _record(key_id: str, raw: dict[bytes, bytes]) -> ApiKey:
    revoked = raw.get(b"revoked_at")
    return ApiKey(
        key_id,
        raw[b"tenant"].decode(),
        raw[b"created_at"].decode(),
        revoked.decode() if revoked else None,
    )
