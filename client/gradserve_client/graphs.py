"""/v1/graphs: forward values and gradients of graph/1 documents."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .transport import Transport
from .waiting import wait_for

DOT = "text/vnd.graphviz"
FINISHED = frozenset({"succeeded", "failed"})
"""Statuses a graph never leaves."""


class Graphs:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def evaluate(
        self, document: Mapping[str, Any], *, respond_async: bool = False, minimal: bool = False
    ) -> dict[str, Any]:
        """Evaluate a graph/1 document: the graph resource, with its `result` when it was
        computed in the request (status `succeeded`); a large graph, or `respond_async`,
        is queued (status `queued`: `get` it later). `minimal`: the result as its summary
        (`output`, `value`, `nodes`), not every node's value and gradient."""
        wanted = {"respond-async": respond_async, "return=minimal": minimal}
        prefer = ", ".join(name for name, asked in wanted.items() if asked)
        headers = {"Prefer": prefer} if prefer else None
        return self._t.json("POST", "/v1/graphs", json=dict(document), headers=headers)

    def get(self, graph_id: str, *, minimal: bool = False) -> dict[str, Any]:
        """The graph resource; `minimal`: its result as its summary (a poll of a large
        graph need not fetch every node's value and gradient)."""
        headers = {"Prefer": "return=minimal"} if minimal else None
        return self._t.json("GET", f"/v1/graphs/{graph_id}", headers=headers)

    def wait(
        self, graph_id: str, timeout: float | None = None, *, minimal: bool = False
    ) -> dict[str, Any]:
        """The graph once it is evaluated or has failed (a failure is not raised: look at
        `status` and `error`), each GET held by the server until then (`Prefer: wait`);
        WaitTimeout when `timeout` seconds pass first. `minimal`: its result's summary."""
        prefer = ["return=minimal"] if minimal else []
        return wait_for(self._t, f"/v1/graphs/{graph_id}", FINISHED, timeout, prefer)

    def dot(self, graph_id: str) -> str:
        """The evaluated graph drawn as Graphviz DOT text (`dot -Tpng` renders it)."""
        response = self._t.request("GET", f"/v1/graphs/{graph_id}", headers={"Accept": DOT})
        response.encoding = "utf-8"
        return response.text
