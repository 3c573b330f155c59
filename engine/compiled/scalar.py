"""Narrow levels of a batch-of-one program, run one node at a time on Python floats.

A numpy call costs microseconds whatever its size, so a level of a few nodes is cheaper
this way; a deep, narrow graph (a chain) would otherwise pay a dozen calls per node. The
arithmetic is the Value engine's, but math errors leave nan to be found and named later.
"""

import math

import numpy as np

# Binary add and mul are most nodes: they get their own codes and inline code.
ADD2, MUL2, ADD, MUL, SUB, DIV, NEG, POW, RELU, TANH, EXP, LOG, SIGMOID = range(13)
CODES = {
    "add": ADD,
    "mul": MUL,
    "sub": SUB,
    "div": DIV,
    "neg": NEG,
    "pow": POW,
    "relu": RELU,
    "tanh": TANH,
    "exp": EXP,
    "log": LOG,
    "sigmoid": SIGMOID,
}
NAN, INF = math.nan, math.inf


class ScalarRun:
    """Nodes in topological order, each (code, out, a, b, extra): a and b are the slots
    of the first two operands; extra is all operand slots (n-ary) or the exponent (pow).
    `back` lists the nodes the output depends on: only they are backpropagated."""

    def __init__(self, nodes, back):
        self.nodes, self.back = nodes, back

    @classmethod
    def build(cls, tape, slots, nodes, live):
        """The run of tape nodes `nodes` (a list), `slots` each node's slot (a list)."""
        ops, inputs, attrs = tape.ops, tape.inputs, tape.attrs
        entries = []
        for i in nodes:
            op, o, args = ops[i], slots[i], [slots[j] for j in inputs[i]]
            code = CODES[op]
            if len(args) == 2 and code in (ADD, MUL):
                code = ADD2 if code == ADD else MUL2
            b = args[1] if len(args) > 1 else -1
            extra = attrs[i] if op == "pow" else args if len(args) > 2 else None
            entries.append((code, o, args[0], b, extra))
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
                    try:
                        u[o] = _value(code, u, a, b, extra)
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
                else:
                    _backward(code, u, du, o, a, b, extra, g)

        return forward, backward


def _value(code, u, a, b, extra):
    x = u[a]
    if code == ADD:
        for j in extra[1:]:
            x += u[j]
        return x
    if code == MUL:
        for j in extra[1:]:
            x *= u[j]
        return x
    if code == SUB:
        return x - u[b]
    if code == DIV:
        return x * u[b] ** -1.0
    if code == NEG:
        return -x
    if code == POW:
        if x < 0.0 and extra != int(extra):
            return NAN
        return x**extra
    if code == RELU:
        return x if x > 0 else 0.0
    if code == TANH:
        return math.tanh(x)
    if code == EXP:
        return math.exp(x)
    if code == LOG:
        return math.log(x)
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _backward(code, u, du, o, a, b, extra, g):
    """Add each operand's share of the node's gradient g (the Value engine's formulas)."""
    x = u[a]
    if code == ADD:
        for j in extra:
            du[j] += g
    elif code == MUL:
        xs = [u[j] for j in extra]
        for i, j in enumerate(extra):
            du[j] += g * math.prod(xs[:i] + xs[i + 1 :])
    elif code == SUB:
        du[a] += g
        du[b] += -g
    elif code == DIV:
        du[a] += g * u[b] ** -1.0
        du[b] += _power_slope(-1.0, u[b]) * (x * g)
    elif code == NEG:
        du[a] += -g
    elif code == POW:
        du[a] += _power_slope(extra, x) * g if extra != 0 else 0.0
    elif code == RELU:
        if x > 0:
            du[a] += g
    elif code == TANH:
        y = u[o]
        du[a] += (1.0 - y * y) * g
    elif code == EXP:
        du[a] += u[o] * g
    elif code == LOG:
        du[a] += g / x
    else:
        y = u[o]
        du[a] += y * (1.0 - y) * g


def _power_slope(k, x):
    try:
        return k * x ** (k - 1)
    except (OverflowError, ZeroDivisionError):  # as the Value engine: an infinite slope
        return INF


def scalar_groups(bounds, order, vary, below):
    """Per group: small enough (and batch-wide) to run as Python floats?"""
    bounds = np.asarray(bounds)
    return ~vary[order[bounds[:-1]]] & (np.diff(bounds) < below)
