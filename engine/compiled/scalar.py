"""Narrow levels of a batch-of-one program, run one node at a time on Python floats.

A numpy call costs microseconds whatever its size, so a level of a few nodes is cheaper
this way; a deep, narrow graph (a chain) would otherwise pay a dozen calls per node. The
arithmetic is the Value engine's, but math errors leave nan to be found and named later.
"""

import math

import numpy as np

from ..ops import ADD, BY_NAME, MUL

# Binary add and mul are most nodes: they get their own codes and inline code. Any other
# node runs its op's float forms from engine.ops, its operands passed by arity.
ADD2, MUL2, UNARY, BINARY, NARY = range(5)
NAN = math.nan


class ScalarRun:
    """Nodes in topological order, each (code, out, a, b, extra): a and b are the slots
    of the first two operands; extra is the op's float forward and backward, all operand
    slots and the attribute. `back` lists the nodes the output depends on: only they are
    backpropagated."""

    def __init__(self, nodes, back):
        self.nodes, self.back = nodes, back

    @classmethod
    def build(cls, tape, slots, nodes, live):
        """The run of tape nodes `nodes` (a list), `slots` each node's slot (a list)."""
        ops, inputs, attrs = tape.ops, tape.inputs, tape.attrs
        entries, by_name = [], BY_NAME
        for i in nodes:
            op, o, args = by_name[ops[i]], slots[i], [slots[j] for j in inputs[i]]
            n = len(args)
            if n == 2 and (op is ADD or op is MUL):
                entries.append((ADD2 if op is ADD else MUL2, o, args[0], args[1], None))
                continue
            code = UNARY if n == 1 else BINARY if n == 2 else NARY
            extra = (op.forward, op.backward, args, attrs[i])
            entries.append((code, o, args[0], args[1] if n > 1 else -1, extra))
        back = (
            entries if live is None else [e for e, i in zip(entries, nodes, strict=True) if live[i]]
        )
        return cls(entries, back[::-1])

    def bind(self, U, dU, V, dV):
        nodes, back = self.nodes, self.back
        u, du = memoryview(U), memoryview(dU)  # indexing gives Python floats, no boxing

        def forward():
            for code, o, a, b, extra in nodes:
                if code == ADD2:
                    u[o] = u[a] + u[b]
                elif code == MUL2:
                    u[o] = u[a] * u[b]
                else:
                    op_forward, _, args, k = extra
                    if code == UNARY:
                        xs = (u[a],)
                    elif code == BINARY:
                        xs = (u[a], u[b])
                    else:
                        xs = [u[j] for j in args]
                    try:
                        u[o] = op_forward(xs, k)
                    except (ArithmeticError, ValueError):  # found and named after the pass
                        u[o] = NAN

        def backward():
            for code, o, a, b, extra in back:
                g = du[o]
                if code == ADD2:
                    du[a] += g
                    du[b] += g
                elif code == MUL2:
                    du[a] += u[b] * g
                    du[b] += u[a] * g
                elif code == UNARY:
                    du[a] += extra[1]((u[a],), u[o], g, extra[3])[0]
                elif code == BINARY:
                    share_a, share_b = extra[1]((u[a], u[b]), u[o], g, extra[3])
                    du[a] += share_a
                    du[b] += share_b
                else:
                    _, op_backward, args, k = extra
                    shares = op_backward([u[j] for j in args], u[o], g, k)
                    for j, share in zip(args, shares, strict=True):
                        du[j] += share

        return forward, backward


def scalar_groups(bounds, order, vary, below):
    """Per group: small enough (and batch-wide) to run as Python floats?"""
    bounds = np.asarray(bounds)
    return ~vary[order[bounds[:-1]]] & (np.diff(bounds) < below)
