"""The body of POST /v1/graphs: a large graph/1 document is validated into columns while
its JSON is checked, once, and the route takes the columns as they are.

jsonbody's nesting and duplicate-key screens pass over the whole body and serialise the
document again (0.3 to 0.5 s for a million nodes). A document engine.columns vouches for
has graph/1's fields and no others, so it nests 4 deep at most (the document, its nodes,
a node, its inputs or attrs), and every ':' of its body is one per key or one inside a
string; of its strings only ids may hold one (ops and the format hold none), read as ids,
as inputs and as the output. A duplicate key leaves one ':' more in the body than keys in
the document orjson read (it keeps one of the two): counting finds it as the screen does.
Anything else (a small graph, a document not vouched for, a count that differs) takes
every screen and the route's own parse, so its problems are worded as before."""

from typing import Any

import numpy as np
from flask import current_app, g

from engine.columns import POW, GraphColumns, vouched_columns
from engine.evaluate import is_large

from .smorest import Blueprint, JsonBodyParser

GRAPH_DEPTH = 4
"""How deep a graph/1 document nests: {"nodes": [{"inputs": [...], "attrs": {...}}]}."""


class GraphVouch:
    """jsonbody.load_body's vouch for a large graph/1 document; the columns it validated."""

    def __init__(self, max_depth: int, max_nodes: int) -> None:
        self.max_depth, self.max_nodes = max_depth, max_nodes
        self.nodes: list | None = None
        self.columns: GraphColumns | None = None

    def __call__(self, data: bytes, document: Any) -> bool:
        if self.max_depth < GRAPH_DEPTH or not is_large(document):
            return False
        columns = vouched_columns(document, self.max_nodes)
        if columns is None or not keys_unique(data, document, columns):
            return False
        # The route reads the columns alone. The node list goes now, while the collector is
        # still paused (api/smorest.py): resumed, it would first walk the list's millions of
        # young objects (0.5 s for a million nodes).
        document["nodes"] = self.nodes = []
        self.columns = columns
        return True


def keys_unique(data: bytes, document: dict, columns: GraphColumns) -> bool:
    """Has no object of `document` (vouched for by engine.columns, read from `data`, which
    holds no backslash) a key twice in the body?"""
    nodes = document["nodes"]
    # keys: the document's, each node's fields, and the exponent of each pow's attrs
    # (vouched: a pow's attrs are {"exponent": x}, any other node's {} or none)
    keys = len(document) + sum(map(len, nodes)) + int(np.count_nonzero(columns.codes == POW))
    ids = columns.ids
    in_strings = 0
    if ":" in "".join(ids):  # ids may hold ':': count them as ids, inputs and the output
        per_id = np.fromiter((i.count(":") for i in ids), np.intp, len(ids))
        in_strings = int(per_id.sum() + per_id[columns.flat].sum())
        if "output" in document:
            in_strings += int(per_id[columns.output])
    return data.count(b":") == keys + in_strings


class GraphBodyParser(JsonBodyParser):
    def vouch(self) -> GraphVouch:
        config = current_app.config
        g.graph_vouch = GraphVouch(config["MAX_JSON_DEPTH"], config["MAX_GRAPH_NODES"])
        return g.graph_vouch


class GraphBlueprint(Blueprint):
    """A blueprint whose bodies GraphBodyParser reads."""

    ARGUMENTS_PARSER = GraphBodyParser()


def vouched(document: dict) -> GraphColumns | None:
    """The columns of `document` if its body's parse validated it (None: parse it)."""
    vouch: GraphVouch | None = g.pop("graph_vouch", None)
    if vouch is None or vouch.nodes is None or vouch.nodes is not document.get("nodes"):
        return None
    return vouch.columns
