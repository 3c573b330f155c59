"""A tenant's webhook signing secret, in the Standard Webhooks format: `whsec_` and the
base64 of 32 random bytes. Made on first use; two first uses at once agree on one."""

import base64
import secrets

import redis

from .keys import Keys

SECRET_BYTES = 32
"""Random bytes in a secret (Standard Webhooks asks for 24 to 64)."""


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


class WebhookSecrets:
    def __init__(self, connection: redis.Redis, prefix: str = "gradserve") -> None:
        self.redis = connection
        self.keys = Keys(prefix)

    def get(self, tenant: str) -> str:
        """The tenant's secret, made now if it has none (SET NX: the first writer wins and
        everyone reads that one)."""
        key = self.keys.webhook_secret(tenant)
        secret = self.redis.get(key)
        if secret is None:
            self.redis.set(key, new_secret(), nx=True)
            secret = self.redis.get(key)
        return secret.decode()
