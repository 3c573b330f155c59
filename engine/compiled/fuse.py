"""Rewrites of a tape for batched runs, found by pattern on the tape alone.

1. A chain of + whose links have no other use becomes one n-ary add, in the same order:
   b + w0*x0 + w1*x1 + ... is one add of n + 1 terms.
2. An add whose terms include products w*x, each with one factor the same for the whole
   batch (w: it depends on no placeholder) and one that is not (x), becomes a "dot" node:
   sum_i w_i*x_i (+ one batch-wide term, the bias). Dot nodes that share their x's form a matrix
   product in the program. Every neuron of an MLP is one; nothing here knows what an MLP is.

Only values of kept nodes survive; evaluate, which reports every node, does not fuse.
"""

from .schedule import varying as depends_on
from .tape import Tape


def varying(tape):
    """For each node: does it depend on a placeholder (differ from sample to sample)?"""
    return depends_on(tape.inputs, tape.placeholders).tolist()


def fuse(tape, vary=None):
    """The tape with add chains folded and dot nodes formed; see the module docstring."""
    ops, inputs, ids = tape.ops, tape.inputs, tape.ids
    vary = varying(tape) if vary is None else vary
    n = len(ops)
    uses = [0] * n
    for args in inputs:
        for j in args:
            uses[j] += 1
    for j in tape.outputs:
        uses[j] += 2  # an output is read whole: it is never folded away

    folded = [False] * n  # an add absorbed into the one add that uses it
    for i in range(n):
        if ops[i] == "add":
            for j in inputs[i]:
                if ops[j] == "add" and uses[j] == 1 and vary[j] == vary[i]:
                    folded[j] = True

    dots = {}  # add index -> (products [(x, w, mul index)], other terms)
    in_dot = [False] * n  # a product now computed inside a dot
    for i in range(n):
        if ops[i] == "add" and not folded[i] and vary[i]:
            products, rest = _split_terms(_terms(i, inputs, folded), ops, inputs, uses, vary)
            if len(products) >= 2:
                dots[i] = (products, rest)
                for _, _, t in products:
                    in_dot[t] = True

    remap = [-1] * n
    new = Tape([], [], [], [], [], [], [])

    def emit(node_id, op, args, attr):
        new.ids.append(node_id)
        new.ops.append(op)
        new.inputs.append(tuple(remap[j] for j in args))
        new.attrs.append(attr)
        return len(new.ids) - 1

    for i in range(n):
        if folded[i] or in_dot[i]:
            continue
        if i in dots:
            products, rest = dots[i]
            products.sort()  # by x: the order of a sum's terms is free
            ws = [w for _, w, _ in products]
            xs = [x for x, _, _ in products]
            # one batch-wide term is the bias; any other terms are added to the dot after
            batch_wide = [t for t in rest if not vary[t]]
            bias = batch_wide if len(batch_wide) == 1 else []
            others = [t for t in rest if vary[t]] if bias else rest
            if not others:
                remap[i] = emit(ids[i], "dot", ws + xs + bias, len(products))
            else:  # the dot, then the add of the other terms and the dot (remap[i] for now)
                remap[i] = emit(f"{ids[i]}.dot", "dot", ws + xs + bias, len(products))
                remap[i] = emit(ids[i], "add", others + [i], None)
        elif ops[i] == "add":
            remap[i] = emit(ids[i], "add", _terms(i, inputs, folded), None)
        else:
            remap[i] = emit(ids[i], ops[i], inputs[i], tape.attrs[i])
    new.outputs.extend(remap[j] for j in tape.outputs)
    new.placeholders.extend(remap[j] for j in tape.placeholders)
    new.params.extend(remap[j] for j in tape.params)
    return new


def _terms(i, inputs, folded):
    """The operands of add i with folded adds replaced by their own terms, in order."""
    terms, stack = [], list(reversed(inputs[i]))
    while stack:
        j = stack.pop()
        if folded[j]:
            stack.extend(reversed(inputs[j]))
        else:
            terms.append(j)
    return terms


def _split_terms(terms, ops, inputs, uses, vary):
    """Products (x, w, the product's index) with w batch-wide and x not, each x once;
    and the other terms."""
    products, rest, seen = [], [], set()
    for t in terms:
        if ops[t] == "mul" and len(inputs[t]) == 2 and uses[t] == 1:
            a, b = inputs[t]
            if vary[a] != vary[b]:
                x, w = (a, b) if vary[a] else (b, a)
                if x not in seen:
                    seen.add(x)
                    products.append((x, w, t))
                    continue
        rest.append(t)
    return products, rest
