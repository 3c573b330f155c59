"""Graph evaluations in Redis: each a hash (status, result as JSON text, its summary, error,
tenant) and its document (to evaluate it on a worker, and to draw it), both expiring together (after
GRAPH_TTL, never later than a job's retention). A worker's late write never brings back one
that expired. An evaluation belongs to the tenant that posted it; another tenant reads it as
unknown.

Documents and results are up to MAX_CONTENT_LENGTH bytes: they go over `bulk`, a connection
whose timeout allows for that (the API's usual one gives up after 0.75 s). A small one saved
in the request goes with other requests' commands (store.batching)."""

import json

import redis
from redis.client import Pipeline

from .. import settings
from ..strictjson import dumps, fast_dumps, fast_loads
from . import scripts
from .batching import Batcher
from .changes import Json
from .ids import ID_PATTERN, new_id
from .jobs import retention_ms
from .keys import Keys
from .queue import Enqueue

BATCHED_BYTES = 256 * 1024
"""A result saved in the request with its document up to this size is sent in a batch."""


def summary_json(result_json: str | bytes, nodes: int | None = None) -> bytes:
    """What `Prefer: return=minimal` shows of a result, as JSON text: its output, its value
    and the graph's node count. Both writers of results put output and value first, so only
    that head is decoded. Without `nodes` (a result stored before summaries were) they are
    counted: `,"` comes before "value", "values" and "grads" and before every id but the
    first of each object (ids hold neither character, numbers no quote), a count in C where
    decoding 40 MB would hold the API process for a second. A result laid out otherwise is
    decoded whole."""
    text = result_json.encode() if isinstance(result_json, str) else result_json
    end = text.find(b',"values":')
    if end > 0:
        result = fast_loads(text[:end] + b"}")
        if nodes is None:
            nodes = (text.count(b',"') - 1) // 2
    else:
        result = fast_loads(text)
        nodes = len(result.get("values", ())) if nodes is None else nodes
    summary = {key: result[key] for key in ("output", "value") if key in result}
    return fast_dumps({**summary, "nodes": nodes})


def succeeded(result_json: str | bytes, nodes: int | None) -> list:
    """A succeeded graph's fields: its result, and the summary of a graph of `nodes` nodes."""
    fields = ["status", "succeeded", "result", result_json]
    if nodes is not None:
        fields += ["summary", summary_json(result_json, nodes)]
    return fields


class GraphStore:
    def __init__(
        self,
        connection: redis.Redis,
        prefix: str = "gradserve",
        retention_days: float = settings.RETENTION_DAYS,
        bulk: redis.Redis | None = None,
    ) -> None:
        self.redis = connection
        self.bulk = bulk or connection
        self.keys = Keys(prefix)
        self.retention = max(1, retention_ms(retention_days) // 1000)  # seconds
        self._set_if_exists = connection.register_script(scripts.SET_IF_EXISTS)
        self.batcher = Batcher(connection)

    def result_writes(
        self,
        result_json: str | bytes,
        ttl: int,
        document: bytes | None = None,
        *,
        tenant: str,
        nodes: int | None = None,
    ) -> tuple[str, list[tuple]]:
        """A new graph's id, and the Redis commands that store an evaluation done in the
        request (of a graph of `nodes` nodes) as succeeded, `tenant`'s, with its document (to
        be drawn). No MULTI: nobody knows the id before they have run."""
        graph_id, ttl = new_id(), min(ttl, self.retention)
        key = self.keys.graph(graph_id)
        fields = [*succeeded(result_json, nodes), "tenant", tenant]
        writes = [("HSET", key, *fields), ("EXPIRE", key, ttl)]
        if document is not None:
            writes.append(("SET", self.keys.graph_doc(graph_id), document, "EX", ttl))
        return graph_id, writes

    def save_result(
        self,
        result_json: str | bytes,
        ttl: int,
        document: bytes | None = None,
        *,
        tenant: str,
        nodes: int | None = None,
    ) -> str:
        """An evaluation done in the request, stored (result_writes); its id."""
        graph_id, writes = self.result_writes(
            result_json, ttl, document, tenant=tenant, nodes=nodes
        )

        def save(pipe: Pipeline) -> None:
            for command in writes:
                pipe.execute_command(*command)

        if len(result_json) + len(document or b"") <= BATCHED_BYTES:
            self.batcher.execute(save)
        else:
            with self.bulk.pipeline(transaction=False) as pipe:
                save(pipe)
                pipe.execute()
        return graph_id

    def queue(self, document: bytes, ttl: int, enqueue: Enqueue, *, tenant: str) -> str:
        """Store `tenant`'s graph document as queued and enqueue it, in one transaction; its
        id. The worker's result is kept in the same hash: it stays the tenant's."""
        graph_id, ttl = new_id(), min(ttl, self.retention)
        with self.bulk.pipeline() as pipe:
            pipe.multi()  # explicit, as rq's enqueue expects of a pipeline it joins
            pipe.hset(self.keys.graph(graph_id), mapping={"status": "queued", "tenant": tenant})
            pipe.expire(self.keys.graph(graph_id), ttl)
            pipe.set(self.keys.graph_doc(graph_id), document, ex=ttl)
            enqueue(pipe, graph_id)
            pipe.execute()
        return graph_id

    def take(self, graph_id: str) -> bytes | None:
        """A queued graph's document, marking it running (None if it has expired, or has
        been evaluated already: its document stays after that, to be drawn). A running one
        is taken again: its worker died before it finished."""
        with self.bulk.pipeline(transaction=False) as pipe:
            pipe.hget(self.keys.graph(graph_id), "status")
            pipe.get(self.keys.graph_doc(graph_id))
            status, document = pipe.execute()
        if document is None or status in (b"succeeded", b"failed"):
            return None
        self._set_if_exists(keys=[self.keys.graph(graph_id)], args=["status", "running"])
        self._announce(graph_id)
        return document

    def finish(
        self,
        graph_id: str,
        result_json: str | bytes | None = None,
        error: Json | None = None,
        nodes: int | None = None,
    ) -> None:
        """Succeeded with its result (of a graph of `nodes` nodes), or failed with a problem
        (the document stays, to be drawn, until it expires with the result)."""
        outcome = (
            succeeded(result_json, nodes)
            if result_json is not None
            else ["status", "failed", "error", dumps(error)]
        )
        self._set_if_exists(keys=[self.keys.graph(graph_id)], args=outcome)
        self._announce(graph_id)

    def _announce(self, graph_id: str) -> None:
        """Tell the API's waiters (Prefer: wait) that the graph changed: they read it again.
        Best effort: a waiter that misses it reads the graph again a few seconds later."""
        try:
            self.redis.publish(self.keys.changes_channel(), self.keys.changed_graph(graph_id))
        except redis.RedisError:
            pass

    def get(
        self, graph_id: str, *, tenant: str, minimal: bool = False
    ) -> tuple[str, bytes | None, Json | None] | None:
        """(status, the result as JSON text, the error) or None if unknown, expired or
        another tenant's. `minimal`: the result's summary (summary_json) in its place, read
        without the result unless it was stored without one."""
        if not ID_PATTERN.fullmatch(graph_id):
            return None
        key = self.keys.graph(graph_id)
        if minimal:
            status, owner, error, result = self.redis.hmget(
                key, "status", "tenant", "error", "summary"
            )
        else:
            raw = self.bulk.hgetall(key)
            status, owner, error, result = map(raw.get, (b"status", b"tenant", b"error", b"result"))
        if status is None or (owner or b"").decode() != tenant:
            return None
        if minimal and status == b"succeeded" and result is None:  # stored without a summary
            whole = self.bulk.hget(key, "result")
            result = whole and summary_json(whole)
        return status.decode(), result, error and json.loads(error)

    def document(self, graph_id: str) -> bytes | None:
        """A graph's document as it was posted (None if unknown or expired)."""
        if not ID_PATTERN.fullmatch(graph_id):
            return None
        return self.bulk.get(self.keys.graph_doc(graph_id))
