"""A tape lowered to a program, and the program run forward and backward over a batch.

The program is a list of kernels (kernels.py, scalar.py) in level order: batch-wide
groups on U, then the bridge, then per-sample groups and matrix products on V. Running it
backward is the same list reversed. numpy never raises: after each pass one check finds
non-finite numbers, and only then is the first culprit looked for and named.
"""

import copy

import numpy as np

from ..errors import NumericError
from ..graph import apply_op
from ..ops import BY_NAME, value_label
from ..value import Value
from .fuse import fuse
from .kernels import Bridge, DotGroup, Group, as_rows
from .scalar import ScalarRun, scalar_groups
from .schedule import layout, tape_csr, varying

SCALAR_BELOW = 16  # batch-wide groups smaller than this run on Python floats (scalar.py)
MEMORIES = 3  # batch sizes kept bound: the full batch or its chunks, and mini-batches


def compile_program(tape, scalar_below=SCALAR_BELOW, fused=False):
    """Lower a tape (tape.py) into a Program; a tape with placeholders is fused first,
    unless it comes `fused` already (structured.mlp_tape's)."""
    return Program(tape, scalar_below, fused)


class Program:
    """`forward(params, X)` gives the outputs for each row of X (a batch of one without
    placeholders); `backward(dZ)` the gradients of sum(dZ * outputs). Values and gradients
    of every node stay readable until the next run (`values()`, `grads()`)."""

    def __init__(self, tape, scalar_below=SCALAR_BELOW, fused=False):
        self.scalar_below = scalar_below
        self.batched = bool(tape.placeholders)
        vary = None
        if self.batched:
            tape = tape if fused else fuse(tape)
        ptr, flat = tape_csr(tape)
        if self.batched:
            vary = varying(tape.inputs, tape.placeholders, ptr, flat)
        self.tape = tape
        self.layout = lay = layout(tape, vary, ptr, flat)
        self.nu, self.nv = lay.nu, lay.nv
        self.n_params, self.n_inputs = len(tape.params), len(tape.placeholders)
        self.initial_u = np.zeros(lay.nu)
        consts = lay.constants.tolist()
        self.initial_u[lay.slot[lay.constants]] = [tape.attrs[i] for i in consts]
        self.kernels = self._kernels(tape, lay)
        outputs = np.asarray(tape.outputs, np.intp)
        self.out_vary, self.out_slots = lay.vary[outputs], lay.slot[outputs]
        self.out_rows = as_rows(self.out_slots) if self.out_vary.all() else None
        self.distinct_outputs = len(set(tape.outputs)) == len(tape.outputs)
        self._memories = {}
        self.memory = None

    def copy(self):
        """This program with run-time arrays of its own: the tape, layout and kernels (never
        changed after the build) are shared, so a cached program serves one run at a time
        each."""
        twin = copy.copy(self)
        twin._memories, twin.memory = {}, None
        return twin

    def _kernels(self, tape, lay):
        live = _live(tape) if {"pow", "div"} & set(tape.ops) else None
        vrow = np.where(lay.vary, lay.slot, -1)
        vrow[lay.bridged] = lay.bridge_rows
        bounds = lay.bounds
        small = scalar_groups(bounds, lay.order, lay.vary, self.scalar_below)
        kernels, run_start, bridged = [], 0, False
        slots = lay.slot.tolist() if small.any() else None
        for g in np.flatnonzero(~small).tolist() + [len(small)]:
            # groups run_start..g-1 are small: one scalar run, in order, before group g
            if run_start < g:
                nodes = lay.order[bounds[run_start] : bounds[g]].tolist()
                run = ScalarRun.build(tape, slots, nodes, live)
                kernels.append(("uv", run))
            run_start = g + 1
            if g == len(small):
                break
            nodes = lay.order[bounds[g] : bounds[g + 1]]
            first = int(nodes[0])
            op, vary = tape.ops[first], bool(lay.vary[first])
            if vary and not bridged and len(lay.bridged):
                kernels.append(("uv", Bridge(lay.bridge_rows, lay.slot[lay.bridged])))
                bridged = True
            operands = lay.operands(nodes, len(tape.inputs[first]))
            if op == "dot":
                n = tape.attrs[first]
                w, x = lay.slot[operands[:n]].T, lay.slot[operands[n : 2 * n, 0]]
                bias = lay.slot[operands[2 * n]] if len(operands) > 2 * n else None
                kernels.append(("uv", DotGroup(int(lay.slot[first]), w, x, bias)))
                continue
            attr = tape.attrs[first] if BY_NAME[op].attr else None
            dead = None if live is None else ~live[nodes]
            idx = vrow[operands] if vary else lay.slot[operands]
            kernels.append(("v" if vary else "u", Group(op, attr, int(lay.slot[first]), idx, dead)))
        return kernels

    def _memory(self, batch):
        memory = self._memories.get(batch)
        if memory is None:
            if len(self._memories) >= MEMORIES:
                self._memories.pop(next(iter(self._memories)))
            memory = self._memories[batch] = Memory(self, batch)
        return memory

    def forward(self, params=None, X=None):
        """The outputs, (batch, outputs): X is (batch, placeholders), params a vector."""
        if self.batched and X is None:
            raise ValueError("this program has placeholders: give X, one row per sample")
        mem = self.memory = self._memory(len(X) if self.batched else 1)
        if self.n_params:
            mem.U[: self.n_params] = params
        if self.batched:
            mem.V[: self.n_inputs] = np.asarray(X, dtype=float).T
        with np.errstate(all="ignore"):
            for step in mem.forward:
                step()
            finite = _finite(mem.U) and _finite(mem.V)
        if not finite:
            raise self._value_error(mem)
        if self.out_rows is not None:
            return mem.V[self.out_rows].T.copy()
        return np.stack(
            [
                mem.V[s] if v else np.full(mem.V.shape[1], mem.U[s])
                for v, s in zip(self.out_vary, self.out_slots, strict=True)
            ],
            axis=1,
        )

    def backward(self, dZ):
        """Backpropagate dZ (batch, outputs) from the last forward; returns the gradient
        of the params (summed over the batch)."""
        mem = self.memory
        mem.dU.fill(0.0)
        mem.dV.fill(0.0)
        dZ = np.asarray(dZ, dtype=float).reshape(mem.V.shape[1], len(self.out_slots))
        if self.out_rows is not None and self.distinct_outputs:
            mem.dV[self.out_rows] = dZ.T
        else:
            self._seed(mem, dZ)
        with np.errstate(all="ignore"):
            for step in mem.backward:
                step()
            finite = _finite(mem.dU) and _finite(mem.dV)
        if not finite:
            raise self._grad_error(mem)
        return mem.dU[: self.n_params].copy()

    def _seed(self, mem, dZ):
        for j, (v, s) in enumerate(zip(self.out_vary, self.out_slots, strict=True)):
            if v:
                mem.dV[s] += dZ[:, j]
            else:
                mem.dU[s] += dZ[:, j].sum()

    def values(self):
        """Every node's value in tape order (a program without placeholders)."""
        return self.memory.U[self.layout.slot]

    def grads(self):
        """Every node's gradient in tape order (a program without placeholders)."""
        return self.memory.dU[self.layout.slot]

    def input_grads(self):
        """The gradient of each placeholder, (batch, placeholders)."""
        return self.memory.dV[: self.n_inputs].T.copy()

    # --- naming the first non-finite node ---

    def _node_values(self, U, V, col):
        """Each node's value in tape order, per-sample ones at sample `col`."""
        vary, slot = self.layout.vary, self.layout.slot
        values = np.empty(len(slot))
        values[~vary] = U[slot[~vary]]
        values[vary] = V[slot[vary], col]
        return values

    def _value_error(self, mem):
        """The first node in tape order without a finite value, in the first sample that
        has one, named with the Value engine's message for its op."""
        bad_cols = np.flatnonzero(~np.isfinite(mem.V).all(axis=0)) if mem.V.size else []
        col = int(bad_cols[0]) if len(bad_cols) else 0
        values = self._node_values(mem.U, mem.V, col)
        i = int(np.flatnonzero(~np.isfinite(values))[0])
        tape = self.tape
        cause = _replay(tape.ops[i], [float(values[j]) for j in tape.inputs[i]], tape.attrs[i])
        return self._at_node(cause, i)

    def _grad_error(self, mem):
        """The node nearest the output (last in tape order) whose gradient is not finite."""
        vary, slot = self.layout.vary, self.layout.slot
        bad = np.empty(len(slot), bool)
        bad[~vary] = ~np.isfinite(mem.dU[slot[~vary]])
        bad[vary] = ~np.isfinite(mem.dV[slot[vary]]).all(axis=1)
        i = int(np.flatnonzero(bad)[-1])
        op = self.tape.ops[i]
        label = "+" if op == "dot" else value_label(op, self.tape.attrs[i])
        cause = NumericError(
            f"the gradient at a {label or 'leaf'} node is not finite", op=label or "input"
        )
        return self._at_node(cause, i)

    def _at_node(self, cause, i):
        node = self.tape.ids[i]
        # A graph's ids are the user's; a traced model's are ours, kept out of the message.
        message = f"{cause}" if self.batched else f"node {node!r}: {cause}"
        return NumericError(message, op=cause.op, node=node)


class Memory:
    """The arrays for one batch size, and the kernels bound to them."""

    def __init__(self, program, batch):
        self.U = program.initial_u.copy()
        self.dU = np.zeros(program.nu)
        self.V = np.zeros((program.nv, batch))
        self.dV = np.zeros((program.nv, batch))
        U2, dU2 = self.U[:, None], self.dU[:, None]
        bound = []
        for space, kernel in program.kernels:
            if space == "u":
                bound.append(kernel.bind(U2, dU2))
            elif space == "v":
                bound.append(kernel.bind(self.V, self.dV))
            else:
                bound.append(kernel.bind(self.U, self.dU, self.V, self.dV))
        self.forward = [f for f, _ in bound]
        self.backward = [b for _, b in reversed(bound)]


def _finite(a):
    # Any inf or nan makes the sum inf or nan, so a finite sum proves every entry finite;
    # a non-finite sum may be an overflow of finite entries: then look at each. Called
    # within the passes' np.errstate, so an overflow here warns of nothing.
    total = np.add.reduce(a, axis=None)
    return total - total == 0.0 or bool(np.isfinite(a).all())


def _live(tape):
    """Per node: does an output depend on it? Others get gradient 0 and are not visited."""
    live = bytearray(len(tape.ops))
    for j in tape.outputs:
        live[j] = 1
    inputs = tape.inputs
    for i in range(len(live) - 1, -1, -1):
        if live[i]:
            for j in inputs[i]:
                live[j] = 1
    return np.frombuffer(bytes(live), dtype=bool)


def _replay(op, xs, attr):
    """The NumericError the Value engine raises for this op on these operands."""
    try:
        if op == "dot":
            n = attr
            total = Value(xs[2 * n]) if len(xs) > 2 * n else None
            for w, x in zip(xs[:n], xs[n : 2 * n], strict=True):
                term = Value(w) * Value(x)
                total = term if total is None else total + term
        else:
            apply_op(op, [Value(x) for x in xs], attr)
    except NumericError as e:
        return e
    return NumericError(f"{op} gave a non-finite result", op=op)
