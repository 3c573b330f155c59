"""Graph evaluations in Redis: each a hash (status, result as JSON text, error, tenant)
that expires (after GRAPH_TTL, never later than a job's retention), and for a queued one its
document until a worker has evaluated it. A worker's late write never brings back one that
expired. An evaluation belongs to the tenant that posted it; another tenant reads it as
unknown."""

import json

import redis

from .. import settings
from ..strictjson import dumps
from . import scripts
from .changes import Json
from .ids import ID_PATTERN, new_id
from .jobs import retention_ms
from .keys import Keys
from .queue import Enqueue


class GraphStore:
    def __init__(
        self,
        connection: redis.Redis,
        prefix: str = "gradserve",
        retention_days: float = settings.RETENTION_DAYS,
    ) -> None:
        self.redis = connection
        self.keys = Keys(prefix)
        self.retention = max(1, retention_ms(retention_days) // 1000)  # seconds
        self._set_if_exists = connection.register_script(scripts.SET_IF_EXISTS)

    def save_result(self, result_json: str, ttl: int, *, tenant: str) -> str:
        """An evaluation done in the request: stored as succeeded, `tenant`'s; its id."""
        graph_id = new_id()
        key = self.keys.graph(graph_id)
        with self.redis.pipeline() as pipe:
            pipe.hset(key, mapping={"status": "succeeded", "result": result_json, "tenant": tenant})
            pipe.expire(key, min(ttl, self.retention))
            pipe.execute()
        return graph_id

    def queue(self, document: bytes, ttl: int, enqueue: Enqueue, *, tenant: str) -> str:
        """Store `tenant`'s graph document as queued and enqueue it, in one transaction; its
        id. The worker's result is kept in the same hash: it stays the tenant's."""
        graph_id, ttl = new_id(), min(ttl, self.retention)
        with self.redis.pipeline() as pipe:
            pipe.multi()  # explicit, as rq's enqueue expects of a pipeline it joins
            pipe.hset(self.keys.graph(graph_id), mapping={"status": "queued", "tenant": tenant})
            pipe.expire(self.keys.graph(graph_id), ttl)
            pipe.set(self.keys.graph_doc(graph_id), document, ex=ttl)
            enqueue(pipe, graph_id)
            pipe.execute()
        return graph_id

    def take(self, graph_id: str) -> bytes | None:
        """A queued graph's document, marking it running (None if it has expired)."""
        document = self.redis.get(self.keys.graph_doc(graph_id))
        if document is not None:
            self._set_if_exists(keys=[self.keys.graph(graph_id)], args=["status", "running"])
        return document

    def finish(
        self, graph_id: str, result_json: str | None = None, error: Json | None = None
    ) -> None:
        """Succeeded with its result, or failed with a problem; the document goes."""
        outcome = (
            ["status", "succeeded", "result", result_json]
            if result_json is not None
            else ["status", "failed", "error", dumps(error)]
        )
        keys = [self.keys.graph(graph_id), self.keys.graph_doc(graph_id)]
        self._set_if_exists(keys=keys, args=outcome)

    def get(self, graph_id: str, *, tenant: str) -> tuple[str, bytes | None, Json | None] | None:
        """(status, the result as JSON text, the error) or None if unknown, expired or
        another tenant's."""
        if not ID_PATTERN.fullmatch(graph_id):
            return None
        raw = self.redis.hgetall(self.keys.graph(graph_id))
        if not raw or raw.get(b"tenant", b"").decode() != tenant:
            return None
        error = raw.get(b"error")
        return raw[b"status"].decode(), raw.get(b"result"), error and json.loads(error)
