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
# A numpy round costs about ROUND + (pending nodes) node-visits of numpy work; a node done
# one at a time in Python costs about NODE_PER_ROUND of them.
ROUND, NODE_PER_ROUND = 4096, 64


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


def levels(inputs, ptr, flat, vary=None):
    """Per node, 1 + the highest level among its operands (leaves are 0). With `vary`, a
    per-sample node counts only its per-sample operands: batch-wide ones run before."""
    if vary is not None:
        lv = [0] * len(inputs)
        for i, args in enumerate(inputs):
            if args:
                v = vary[i]
                lv[i] = 1 + max([lv[j] for j in args if vary[j] == v], default=0)
        return np.array(lv, dtype=np.intp)
    level = np.where(ptr[1:] == ptr[:-1], 0, -1)
    pending = _wide_levels(level, ptr, flat)
    if len(pending):  # a deep rest: one node at a time, in tape (topological) order
        lv = level.tolist()
        get = lv.__getitem__
        for i in pending.tolist():
            lv[i] = 1 + max(map(get, inputs[i]))
        level = np.array(lv, dtype=np.intp)
    return level


def _wide_levels(level, ptr, flat):
    """Fill in `level` a whole level per round while levels are wide; return the nodes
    left when they are not (a chain would cost a round per node)."""
    pending = np.flatnonzero(level < 0)
    while len(pending):
        counts = ptr[pending + 1] - ptr[pending]
        starts = np.cumsum(counts) - counts
        edges = np.repeat(ptr[pending] - starts, counts) + np.arange(int(counts.sum()))
        operand_levels = level[flat[edges]]
        ready = np.minimum.reduceat(operand_levels, starts) >= 0
        done = pending[ready]
        level[done] = np.maximum.reduceat(operand_levels, starts)[ready] + 1
        pending = pending[~ready]
        if len(done) * NODE_PER_ROUND < len(pending) + ROUND:  # a round costs more than
            break  # finishing its nodes one at a time would
    return pending


def layout(tape, vary=None):
    """Plan a tape: `vary` (per node, bool) is None when nothing is per-sample."""
    n = len(tape.ops)
    codes, arity, ptr, flat = _columns(tape, n)
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
    bounds = np.concatenate(([0], cuts, [len(order)])).tolist()

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


def _columns(tape, n):
    """(op codes, arities, ptr, flat) of a tape: its own arrays if it has them (a graph
    decoded into columns, engine.columns), else made from its lists."""
    if getattr(tape, "codes", None) is not None:
        return tape.codes.astype(np.intp), np.diff(tape.ptr), tape.ptr, tape.flat
    try:
        codes = np.array([CODE[op] for op in tape.ops], dtype=np.intp)
    except KeyError as e:
        raise ValueError(f"unknown op {e.args[0]!r} in a tape") from None
    arity = np.fromiter(map(len, tape.inputs), np.intp, n)
    ptr = np.zeros(n + 1, np.intp)
    np.cumsum(arity, out=ptr[1:])
    flat = np.fromiter(chain.from_iterable(tape.inputs), np.intp, int(ptr[-1]))
    return codes, arity, ptr, flat


def _bridged(tape, computed_v, codes, vary):
    """Batch-wide nodes read by per-sample ops other than dot (a dot reads U itself)."""
    readers = computed_v[codes[computed_v] != DOT].tolist()
    operands = np.fromiter(chain.from_iterable(tape.inputs[i] for i in readers), np.intp)
    return np.unique(operands[~vary[operands]]) if len(operands) else np.zeros(0, np.intp)
