"""Kernels: each runs one group of nodes (one level, one op) over the whole batch, forward
and backward, in a few numpy calls. Storage is a 2-D array whose row r is node r's value
over the batch (a batch of one for batch-wide nodes); gradients live in a twin array.

Each op's numpy forms are engine.ops's (forward_array, backward). Sums keep the Value
engine's left-to-right order, so a group gives the Value engine's floats; only the dot
group (a matrix product) sums in BLAS's order.
"""

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..ops import BY_NAME


def as_rows(idx):
    """Row indices as a slice when they step evenly, up or down (a view: no gather, no
    scatter). A traced model's layers come last unit first: their rows step down."""
    idx = np.asarray(idx)
    first = int(idx[0])
    if len(idx) == 1:
        return slice(first, first + 1)
    step, last = int(idx[1]) - first, int(idx[-1])
    if step and last - first == step * (len(idx) - 1) and (np.diff(idx) == step).all():
        stop = last + (1 if step > 0 else -1)
        return slice(first, None if stop < 0 else stop, step)
    return idx


class ScatterAdd:
    """dA[idx] += C, row by row, for indices that may repeat (a node used twice)."""

    def __init__(self, idx):
        self.rows = as_rows(idx)
        self.repeats = not isinstance(self.rows, slice) and _repeats(idx)
        if self.repeats:
            uniq, inverse, counts = np.unique(idx, return_inverse=True, return_counts=True)
            self.uniq, self.inverse = uniq, inverse
            self.order = np.argsort(inverse, kind="stable")
            self.starts = np.cumsum(counts) - counts

    def add(self, dA, C):
        if not self.repeats:  # a slice or distinct rows: numpy's += is exact
            dA[self.rows] += C
        elif C.shape[1] == 1:
            dA[self.uniq, 0] += np.bincount(self.inverse, C[:, 0], len(self.uniq))
        else:
            dA[self.uniq] += np.add.reduceat(C[self.order], self.starts, axis=0)


def _repeats(idx):
    if len(idx) < 512:  # a set is quicker than a sort when short
        return len(set(idx.tolist())) < len(idx)
    ordered = np.sort(idx)
    return bool((ordered[1:] == ordered[:-1]).any())


class Group:
    """m nodes of one op (and arity, and exponent) in consecutive rows from `out`; operand
    p of node j is row idx[p, j]. `dead` marks nodes the output does not depend on: their
    gradient is 0, and pow and div must not turn 0 * an infinite slope into nan."""

    def __init__(self, op, attr, out, idx, dead=None):
        self.op, self.attr = op, attr
        self.out = slice(out, out + idx.shape[1])
        rows = [as_rows(r) for r in idx]
        self.views = all(isinstance(r, slice) for r in rows)
        self.rows = rows if self.views else idx
        self.scatter = None if self.views else ScatterAdd(idx.ravel())
        self.keep = None if dead is None or not dead.any() else ~dead[:, None]

    def bind(self, A, dA):
        op = BY_NAME[self.op]
        forward_op, backward_op = op.forward_array, op.backward
        attr, keep, scatter = self.attr, self.keep, self.scatter
        out, g = A[self.out], dA[self.out]
        if self.views:
            xs = [A[r] for r in self.rows]
            dxs = [dA[r] for r in self.rows]
            gather = lambda: xs  # noqa: E731  (views stay current: nothing to gather)
        else:
            idx, dxs = self.rows, None
            gather = lambda: A[idx]  # noqa: E731

        def forward():
            forward_op(gather(), out, attr)

        def backward():
            contributions = backward_op(gather(), out, g, attr)
            if keep is not None:
                contributions = [np.where(keep, c, 0.0) for c in contributions]
            if scatter is None:
                for dx, c in zip(dxs, contributions, strict=True):
                    dx += c
            else:
                scatter.add(dA, np.concatenate(contributions))

        return forward, backward


def _as_matrix(idx):
    """(base, row step, column step) when idx[j, i] = base + j*rs + i*cs over distinct
    slots (steps of either sign), so that the matrix is a strided view of the storage;
    else None."""
    m, n = idx.shape
    base = int(idx[0, 0])
    rs = int(idx[1, 0]) - base if m > 1 else 0
    cs = int(idx[0, 1]) - base if n > 1 else 0
    affine = base + rs * np.arange(m)[:, None] + cs * np.arange(n)
    if not (affine == idx).all():
        return None
    # rows that do not overlap (|rs| >= n*|cs|: a model's units), or columns that do not,
    # are distinct slots without a sort
    apart = abs(rs) >= n * abs(cs) > 0 or abs(cs) >= m * abs(rs) > 0 or idx.size == 1
    if not apart and len(np.unique(idx)) < idx.size:
        return None
    return base, rs, cs


class DotGroup:
    """m dot nodes over the same n per-sample operands x: out = W @ X (+ bias), with W
    (m, n) and the bias read from the batch-wide storage U."""

    def __init__(self, out, w_slots, x_rows, bias_slots=None):
        m = w_slots.shape[0]
        self.out = slice(out, out + m)
        self.w_slots, self.matrix = w_slots, _as_matrix(w_slots)
        self.w_scatter = None if self.matrix else ScatterAdd(w_slots.ravel())
        self.x = as_rows(x_rows)
        self.bias = None if bias_slots is None else as_rows(bias_slots)
        self.bias_scatter = None if bias_slots is None else ScatterAdd(bias_slots)

    def _view(self, flat):
        """W as a view of the storage: strided from its lowest slot, then flipped along
        the axes whose slots step down."""
        base, rs, cs = self.matrix
        m, n = self.w_slots.shape
        start = base + min(rs, 0) * (m - 1) + min(cs, 0) * (n - 1)
        s = flat.strides[0]
        view = as_strided(flat[start:], (m, n), (abs(rs) * s, abs(cs) * s), writeable=True)
        return view[:: -1 if rs < 0 else 1, :: -1 if cs < 0 else 1]

    def bind(self, U, dU, V, dV):
        out, g, x, bias = V[self.out], dV[self.out], self.x, self.bias
        w_slots, w_scatter, bias_scatter = self.w_slots, self.w_scatter, self.bias_scatter
        if self.matrix:
            W, dW = self._view(U), self._view(dU)
            weights = lambda: W  # noqa: E731
        else:
            weights = lambda: U[w_slots]  # noqa: E731
        x_is_view = isinstance(x, slice)
        X_view, dX_view = (V[x], dV[x]) if x_is_view else (None, None)
        dU2 = dU[:, None]

        def forward():
            np.matmul(weights(), X_view if x_is_view else V[x], out=out)
            if bias is not None:
                np.add(out, U[bias][:, None], out=out)

        def backward():
            X = X_view if x_is_view else V[x]
            W_now = weights()
            if x_is_view:
                np.add(dX_view, W_now.T @ g, out=dX_view)
            else:
                dV[x] += W_now.T @ g
            gW = g @ X.T
            if w_scatter is None:
                np.add(dW, gW, out=dW)
            else:
                w_scatter.add(dU2, gW.reshape(-1, 1))
            if bias is not None:
                bias_scatter.add(dU2, g.sum(axis=1)[:, None])

        return forward, backward


class Bridge:
    """Batch-wide nodes that per-sample ops read: copied into rows of V, their gradient
    summed over the batch on the way back."""

    def __init__(self, rows, slots):
        self.rows, self.slots = as_rows(rows), slots

    def bind(self, U, dU, V, dV):
        rows, slots = self.rows, self.slots

        def forward():
            V[rows] = U[slots][:, None]

        def backward():
            dU[slots] += dV[rows].sum(axis=1)

        return forward, backward
