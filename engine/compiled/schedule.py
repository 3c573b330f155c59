"""Where each node of a tape runs and lives: levels, groups, and slots.

A node's level is 1 + the highest level among its operands (leaves are 0), so the nodes
of one level depend only on earlier levels. Nodes of one level, op, arity and exponent
form a group: one kernel. Batch-wide nodes (no placeholder among their ancestors) live in
U, one value each; per-sample nodes in V, one row over the batch. Rows are handed out in
group order, so every group writes a contiguous block.
"""

from itertools import chain
from typing import NamedTuple

import numpy as np

from ..ops import NAMES
from ..ops import OPS as GRAPH_OPS

OPS = (*NAMES, "dot")  # graph/1's ops, and the dot that fuse.py forms
CODE = {op: code for code, op in enumerate(OPS)}
INPUT, DOT = CODE["input"], CODE["dot"]
# per code: does the op carry an attribute (pow's exponent)? dot, the last code, does not
HAS_ATTR = np.array([op.attr is not None for op in GRAPH_OPS] + [False])
# A numpy round costs about ROUND visits of numpy work, and one more per operand of the
# nodes still pending; a node done one at a time in Python costs about NODE_PER_ROUND of
# them, and EDGE_PER_ROUND more per operand (a dot node has hundreds). Rounds go on while
# the nodes they settle would cost more in Python than the round's fixed part and a
# share of its pending operands (the rounds to come settle those: an MLP's first round
# settles only its first layer).
ROUND, NODE_PER_ROUND, EDGE_PER_ROUND = 4096, 64, 16
UNKNOWN = np.iinfo(np.intp).max  # a level not known yet


class Layout(NamedTuple):
    vary: np.ndarray  # per node: lives in V (else U)
    slot: np.ndarray  # per node: its row in U or V
    nu: int
    nv: int
    constants: np.ndarray  # tape indices of the constant leaves (values set once)
    bridged: np.ndarray  # tape indices of U nodes copied into V rows for per-sample ops
    bridge_rows: np.ndarray
    order: np.ndarray  # the computed nodes, group after group, each group in slot order
    bounds: list  # group g is order[bounds[g]:bounds[g + 1]]
    ptr: np.ndarray  # node i's operands are flat[ptr[i]:ptr[i + 1]]
    flat: np.ndarray

    def operands(self, nodes, arity):
        """(arity, len(nodes)) tape indices: operand p of each node."""
        return self.flat[self.ptr[nodes] + np.arange(arity)[:, None]]


def tape_csr(tape):
    """(ptr, flat) of a tape: its own arrays if it has them (a graph decoded into columns,
    engine.columns: its operands are never read node by node), else made from its lists."""
    if getattr(tape, "ptr", None) is not None:
        return tape.ptr, tape.flat
    return csr(tape.inputs)


def csr(inputs):
    """(ptr, flat): node i's operands are flat[ptr[i]:ptr[i + 1]]."""
    n = len(inputs)
    ptr = np.zeros(n + 1, np.intp)
    np.cumsum(np.fromiter(map(len, inputs), np.intp, n), out=ptr[1:])
    return ptr, np.fromiter(chain.from_iterable(inputs), np.intp, int(ptr[-1]))


def _rounds(pending, ptr, flat):
    """Yield, round after round, (pending, starts, operands): the operands of each pending
    node laid end to end, node k's from starts[k]. The caller settles some nodes and sends
    back the pending rest; rounds stop when they would cost more than finishing the rest
    one node at a time (a chain would cost a round per node). Returns what is left."""
    while len(pending):
        counts = ptr[pending + 1] - ptr[pending]
        starts = np.cumsum(counts) - counts
        total = int(counts.sum())
        edges = np.repeat(ptr[pending] - starts, counts) + np.arange(total)
        left = yield pending, starts, flat[edges]
        settled = len(pending) - len(left)
        settled_edges = total - int((ptr[left + 1] - ptr[left]).sum())
        pending = left
        saved = settled * NODE_PER_ROUND + settled_edges * EDGE_PER_ROUND
        if saved < ROUND + (total - settled_edges) // EDGE_PER_ROUND:
            break
    return pending


def varying(inputs, placeholders, ptr=None, flat=None):
    """Per node (bool array): does it depend on a placeholder (differ between samples)?"""
    ptr, flat = csr(inputs) if ptr is None else (ptr, flat)
    n = len(inputs)
    vary = np.zeros(n, bool)
    vary[np.asarray(placeholders, np.intp)] = True
    known = ptr[1:] == ptr[:-1]  # the leaves
    rounds = _rounds(np.flatnonzero(~known), ptr, flat)
    try:
        pending, starts, operands = next(rounds)
        while True:
            ready = np.logical_and.reduceat(known[operands], starts)
            done = pending[ready]
            vary[done] = np.logical_or.reduceat(vary[operands], starts)[ready]
            known[done] = True
            pending, starts, operands = rounds.send(pending[~ready])
    except StopIteration as stop:
        rest = stop.value
    if rest is not None and len(rest):  # a deep rest: in tape (topological) order
        vl = vary.tolist()
        for i in rest.tolist():
            vl[i] = any(vl[j] for j in inputs[i])
        vary = np.array(vl, bool)
    return vary


def levels(inputs, ptr, flat, vary=None):
    """Per node, 1 + the highest level among its operands (leaves are 0). With `vary`, a
    node counts only the operands on its side (per-sample or batch-wide): a per-sample
    node's batch-wide operands run before all per-sample nodes."""
    # Unknown levels are UNKNOWN: a node whose highest operand level is below it is ready.
    level = np.where(ptr[1:] == ptr[:-1], 0, UNKNOWN)
    vary = None if vary is None else np.asarray(vary, bool)
    rounds = _rounds(np.flatnonzero(level == UNKNOWN), ptr, flat)
    rest = None
    try:
        pending, starts, operands = next(rounds)
        while True:
            operand_levels = level[operands]
            if vary is not None:  # the other side's operands: ready, and count as 0
                owner = np.repeat(vary[pending], np.diff(np.append(starts, len(operands))))
                operand_levels[vary[operands] != owner] = 0
            highest = np.maximum.reduceat(operand_levels, starts)
            ready = highest < UNKNOWN
            level[pending[ready]] = highest[ready] + 1
            pending, starts, operands = rounds.send(pending[~ready])
    except StopIteration as stop:
        rest = stop.value
    if rest is not None and len(rest):  # a deep rest: in tape (topological) order
        lv = level.tolist()
        if vary is None:
            get = lv.__getitem__
            for i in rest.tolist():
                lv[i] = 1 + max(map(get, inputs[i]))
        else:
            vl = vary.tolist()
            for i in rest.tolist():
                v = vl[i]
                lv[i] = 1 + max([lv[j] for j in inputs[i] if vl[j] == v], default=0)
        level = np.array(lv, dtype=np.intp)
    return level


def layout(tape, vary=None, ptr=None, flat=None):
    """Plan a tape: `vary` (per node, bool) is None when nothing is per-sample."""
    n = len(tape.ops)
    codes, arity, ptr, flat = _columns(tape, n, ptr, flat)
    level = levels(tape.inputs, ptr, flat, vary)
    vary = np.zeros(n, bool) if vary is None else np.asarray(vary, bool)

    # group kind: op, arity and attribute (pow's exponent) or operand row (dot)
    tag = np.zeros(n, np.intp)
    attributed = np.flatnonzero(HAS_ATTR[codes])
    if len(attributed):
        values = np.array([tape.attrs[i] for i in attributed.tolist()], dtype=float)
        tag[attributed] = np.unique(values, return_inverse=True)[1] + 1
    dots = np.flatnonzero(codes == DOT).tolist()
    if dots:
        rows = {}  # dots over the same x's, with a bias or not, make one matrix product
        tag[dots] = [
            rows.setdefault(
                (tape.inputs[i][tape.attrs[i] : 2 * tape.attrs[i]], len(tape.inputs[i]) % 2),
                len(rows),
            )
            for i in dots
        ]
    kinds, kind = np.unique(
        (tag * (int(arity.max(initial=0)) + 1) + arity) * len(OPS) + codes, return_inverse=True
    )

    computed = np.flatnonzero(codes != INPUT)
    key = (vary[computed] * (int(level.max(initial=0)) + 1) + level[computed]) * len(kinds)
    key += kind[computed]
    by_group = np.argsort(key, kind="stable")  # stable: tape order within a group
    order, sorted_key = computed[by_group], key[by_group]
    cuts = np.flatnonzero(sorted_key[1:] != sorted_key[:-1]) + 1
    # no computed node (a graph of leaves alone): no group, not one empty group
    bounds = np.concatenate(([0], cuts, [len(order)])).tolist() if len(order) else [0]

    # slots: U = params, constants, computed; V = placeholders, bridges, computed
    slot = np.full(n, -1, np.intp)
    params = np.asarray(tape.params, np.intp)
    placeholders = np.asarray(tape.placeholders, np.intp)
    leaves = codes == INPUT
    is_fed = np.zeros(n, bool)
    is_fed[params] = is_fed[placeholders] = True
    constants = np.flatnonzero(leaves & ~is_fed)
    computed_u = order[~vary[order]]
    computed_v = order[vary[order]]
    u_order = np.concatenate((params, constants, computed_u))
    slot[u_order] = np.arange(len(u_order))

    bridged = _bridged(tape, computed_v, codes, vary)
    bridge_rows = len(placeholders) + np.arange(len(bridged))
    v_order = np.concatenate((placeholders, computed_v))
    slot[placeholders] = np.arange(len(placeholders))
    slot[computed_v] = len(placeholders) + len(bridged) + np.arange(len(computed_v))

    return Layout(
        vary,
        slot,
        len(u_order),
        len(v_order) + len(bridged),
        constants,
        bridged,
        bridge_rows,
        order,
        bounds,
        ptr,
        flat,
    )


def _columns(tape, n, ptr=None, flat=None):
    """(op codes, arities, ptr, flat) of a tape: its own arrays if it has them (a graph
    decoded into columns, engine.columns), else made from its lists (ptr and flat as
    given, when the caller has them already)."""
    if getattr(tape, "codes", None) is not None:
        return tape.codes.astype(np.intp), np.diff(tape.ptr), tape.ptr, tape.flat
    try:
        codes = np.array([CODE[op] for op in tape.ops], dtype=np.intp)
    except KeyError as e:
        raise ValueError(f"unknown op {e.args[0]!r} in a tape") from None
    ptr, flat = csr(tape.inputs) if ptr is None else (ptr, flat)
    return codes, np.diff(ptr), ptr, flat


def _bridged(tape, computed_v, codes, vary):
    """Batch-wide nodes read by per-sample ops other than dot (a dot reads U itself)."""
    readers = computed_v[codes[computed_v] != DOT].tolist()
    operands = np.fromiter(chain.from_iterable(tape.inputs[i] for i in readers), np.intp)
    return np.unique(operands[~vary[operands]]) if len(operands) else np.zeros(0, np.intp)
