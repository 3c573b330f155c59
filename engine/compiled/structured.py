"""An MLP's tape built a layer at a time, without tracing a Value per scalar.

`mlp_tape(inputs, layers, activation)` is, list for list, the tape that
`fuse(trace(model(x), inputs=x, params=model.parameters()))` records for that MLP (ids,
ops, operands, order; fed leaves hold 0.0, their values being fed at run time). Tracing
2-64-64-1 builds ~13,000 Values and walks them; this knows where each of them would land:

- trace's walk, first operand first, finishes the units layer by layer, each layer in
  order. A unit of n inputs records a product and an add per input (the product with
  input i right after input i's unit, if that one is new), then its activation, if any.
- fuse turns a unit of two or more inputs into one dot node (ws, xs sorted by the x's
  place in the tape, bias); a unit of one input stays a product and an add.

tests/test_compile_cache.py holds it to the traced tape over many shapes and activations.
"""

import functools

from ..nn import ACTIVATIONS
from .tape import Tape


def mlp_tape(inputs, layers, activation):
    """The fused tape of engine.nn.MLP(inputs, layers, activation) on one sample."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}")
    sizes = [inputs, *layers]
    widths = list(zip(sizes[:-1], sizes[1:], strict=True))
    n_params = sum((nin + 1) * nout for nin, nout in widths)
    leaves = inputs + n_params
    ids = _names("x", inputs) + _names("p", n_params)
    ops = ["input"] * leaves
    operands = [()] * leaves
    attrs = [0.0] * leaves

    # first parameter (tape index) of each layer; each unit holds nin weights, then its bias
    first = [inputs]
    for nin, nout in widths:
        first.append(first[-1] + (nin + 1) * nout)
    last = len(widths) - 1
    made = [[-1] * nout for _, nout in widths]  # [layer][unit]: tape index of its output
    sorted_xs = {}  # layer -> (its operands' order by tape index, the operands so ordered)
    recorded = leaves  # nodes trace has recorded so far (unfused): the ids' numbers

    def finish(k, j, products_recorded):
        """Unit j of layer k, whose operands are made (and, if products_recorded, its
        products recorded); trace's count of records moves past it."""
        nonlocal recorded
        nin = widths[k][0]
        act = activation if k < last else "linear"
        top = recorded - 1 if products_recorded else recorded + 2 * nin - 1  # its last add
        w0 = first[k] + j * (nin + 1)
        if k not in sorted_xs:
            xs = list(range(inputs)) if k == 0 else made[k - 1]
            by_x = sorted(range(nin), key=xs.__getitem__)
            sorted_xs[k] = by_x, [xs[i] for i in by_x]
        by_x, xs = sorted_xs[k]
        if nin >= 2:
            args = (*map(w0.__add__, by_x), *xs, w0 + nin)
            out = _emit(ids, ops, operands, attrs, f"n{top}", "dot", args, nin)
        else:
            product = _emit(ids, ops, operands, attrs, f"n{top - 1}", "mul", (w0, xs[0]), None)
            out = _emit(ids, ops, operands, attrs, f"n{top}", "add", (w0 + 1, product), None)
        if act != "linear":
            out = _emit(ids, ops, operands, attrs, f"n{top + 1}", act, (out,), None)
        made[k][j] = out
        recorded = top + 1 + (act != "linear")

    # The walk from output 0 goes down through each layer's first unit to layer 0; coming
    # back up, a unit records its product with operand i and the add after it right after
    # operand i's unit: the rest of layer k - 1 is finished inside layer k's first unit.
    for k, (nin, _) in enumerate(widths):
        if k > 0:
            for i in range(nin):
                if i > 0:
                    finish(k - 1, i, False)
                recorded += 2  # its product with operand i, and the add of it
        finish(k, 0, k > 0)
    for j in range(1, widths[last][1]):  # the other outputs: their operands are all made
        finish(last, j, False)

    outputs = list(made[last])
    return Tape(
        ids, ops, operands, attrs, outputs, list(range(inputs)), list(range(inputs, leaves))
    )


@functools.lru_cache(maxsize=8)
def _leaf_names(prefix, n):
    return tuple(f"{prefix}{k}" for k in range(n))


def _names(prefix, n):
    """[prefix0, prefix1, ...]: n names, from one cached longer list when there is one."""
    size = 1 << max(n - 1, 0).bit_length()  # a few sizes serve every n
    return list(_leaf_names(prefix, size)[:n])


def _emit(ids, ops, operands, attrs, node_id, op, args, attr):
    ids.append(node_id)
    ops.append(op)
    operands.append(args)
    attrs.append(attr)
    return len(ids) - 1
