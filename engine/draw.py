"""Pictures of an expression, drawn as Karpathy's micrograd lectures draw them.

Left to right, one record per value (`label | data | grad`), one small node per op with
edges operand -> op -> result. `to_dot` writes Graphviz DOT text and needs nothing;
`draw_dot` wraps the same statements in a `graphviz.Digraph` (the optional `graphviz`
package; rendering it to an image also needs Graphviz's `dot` program).

Both draw a `Value` or an evaluated graph/1 document (node ids as labels), a large one also
from its columns (engine.columns). A graph of more than `max_nodes` values is cut to the
ones nearest the output, and a note says so.
"""

from collections import deque

import orjson

from .columns import GraphColumns
from .compiled.evaluate import entries_of
from .evaluate import evaluate
from .graph import parse_graph
from .ops import NAMES, OPS
from .value import Value, paused_gc

MAX_NODES = 200  # values drawn at most; beyond a few hundred a picture cannot be read
RANKDIRS = ("LR", "TB", "RL", "BT")

# graph/1 ops drawn with the Value engine's own labels (Value._op), so both look alike;
# sub, div and neg are not primitives of Value, and pow shows its exponent ("**2").
OP_SYMBOLS = {op.name: op.label for op in OPS if not op.derived and op.attr is None} | {
    "sub": "-",
    "div": "/",
    "neg": "neg",
}

_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\n"})
# In a record label these five also structure the record: escaped, they are just text.
_RECORD_ESCAPES = _ESCAPES | str.maketrans({c: "\\" + c for c in "|{}<>"})


def to_dot(x, result=None, *, max_nodes=MAX_NODES, rankdir="LR"):
    """The Graphviz DOT text of a Value's expression, or of a graph/1 document (or the
    GraphColumns engine.columns reads it into) with its result as `engine.evaluate(doc)`
    returns it (evaluated here when not given; for columns, also its JSON text)."""
    graph_line, body = _statements(x, result, max_nodes, rankdir)
    return "digraph {\n" + graph_line + "".join(body) + "}\n"


def draw_dot(x, result=None, *, max_nodes=MAX_NODES, rankdir="LR", format="svg"):
    """A graphviz.Digraph of what `to_dot` writes: show it in a notebook, or
    `.render()` it (which needs Graphviz's `dot` program)."""
    try:
        import graphviz
    except ImportError as exc:
        raise ImportError(
            "draw_dot needs the graphviz Python package: pip install 'gradserve[draw]' "
            "(or pip install graphviz). engine.to_dot gives the same picture as DOT text "
            "without it."
        ) from exc
    _, body = _statements(x, result, max_nodes, rankdir)
    return graphviz.Digraph(format=format, graph_attr={"rankdir": rankdir}, body=body)


def _statements(x, result, max_nodes, rankdir):
    """The graph attribute line and the node and edge lines, as a Digraph body holds them."""
    if isinstance(max_nodes, bool) or not isinstance(max_nodes, int) or max_nodes < 1:
        raise ValueError(f"max_nodes must be a positive int, not {max_nodes!r}")
    if rankdir not in RANKDIRS:
        raise ValueError(f"rankdir must be one of {', '.join(RANKDIRS)}, not {rankdir!r}")
    if isinstance(x, Value):
        if result is not None:
            raise TypeError("a Value carries its own data and grads: pass no result with it")
        shown, total = _value_nodes(x, max_nodes)
    elif isinstance(x, dict):
        shown, total = _document_nodes(x, result, max_nodes)
    elif isinstance(x, GraphColumns):
        shown, total = _columns_nodes(x, result, max_nodes)
    else:
        kind = type(x).__name__
        raise TypeError(f"draws a Value, a graph/1 document (a dict) or its columns, not {kind}")
    return f"\tgraph [rankdir={rankdir}]\n", _body(shown, total, max_nodes)


def _value_nodes(root, limit):
    """(label, data, grad, op, operand numbers or None where cut) of the values drawn,
    numbered nearest first (0 is the output), and how many values the expression has."""
    near = _nearest(root, lambda v: v._prev, id, limit)
    number = {id(v): i for i, v in enumerate(near)}
    shown = [(v.label, v.data, v.grad, v._op, [number.get(id(c)) for c in v._prev]) for v in near]
    return shown, len(near) if len(near) < limit else _count(root)


def _count(root):
    """How many values an expression has (only its size is wanted: no order is built)."""
    seen, stack = {id(root)}, [root]
    with paused_gc():  # a big graph is already on the heap: collections would walk it all
        while stack:
            for child in stack.pop()._prev:
                if id(child) not in seen:
                    seen.add(id(child))
                    stack.append(child)
    return len(seen)


def _document_nodes(doc, result, limit):
    """As _value_nodes, for a graph/1 document: node ids as labels, values and grads from
    its result. Nodes that do not feed the output are drawn too, after those that do."""
    parsed = parse_graph(doc)
    result = evaluate(doc) if result is None else result
    ids, ops, attrs = parsed.ids, parsed.ops, parsed.attrs
    symbol = lambda i: _symbol(ops[i], attrs[i])  # noqa: E731
    near = _near(parsed.output, parsed.inputs.__getitem__, len(ids), limit)
    return _graph_nodes(ids, symbol, parsed.inputs.__getitem__, near, _by_id(result, ids, near))


def _columns_nodes(columns, result, limit):
    """As _document_nodes, for a graph kept as columns (engine.columns, as the service keeps
    a large one), its result as evaluate returns it or as result_json writes it: only the
    nodes drawn are read, so a million-node graph draws about as fast as a small one."""
    result = evaluate(columns) if result is None else result
    ids, codes, attrs = columns.ids, columns.codes, columns.attrs
    ptr, flat = columns.ptr, columns.flat

    def symbol(i):
        exponent = float(attrs[i])  # a column holds floats: 2.0 is drawn as 2 was written
        return _symbol(NAMES[codes[i]], int(exponent) if exponent.is_integer() else exponent)

    operands = lambda i: flat[ptr[i] : ptr[i + 1]].tolist()  # noqa: E731
    near = _near(columns.output, operands, len(ids), limit)
    if isinstance(result, bytes):  # JSON text: read where drawn if result_json wrote it
        read = entries_of(result, ids, near) or _by_id(orjson.loads(result), ids, near)
    else:
        read = _by_id(result, ids, near)
    return _graph_nodes(ids, symbol, operands, near, read)


def _symbol(op, attr):
    return "" if op == "input" else OP_SYMBOLS.get(op) or f"**{attr}"


def _near(output, operands, n, limit):
    """The nodes drawn: breadth-first from the output, then, if there is room, the nodes
    the output does not depend on, last first."""
    near = _nearest(output, operands, int, limit)
    if len(near) < limit:
        reached = set(near)
        rest = (i for i in reversed(range(n)) if i not in reached)
        near += [i for _, i in zip(range(limit - len(near)), rest, strict=False)]
    return near


def _by_id(result, ids, near):
    """{i: (value, grad)} of the nodes drawn, from a result as evaluate returns it."""
    read = {}
    for i in near:
        try:
            read[i] = result["values"][ids[i]], result["grads"][ids[i]]
        except (KeyError, TypeError):
            raise ValueError(
                f"the result has no value and grad for node {ids[i]!r}: pass the result "
                "of evaluating this very document"
            ) from None
    return read


def _graph_nodes(ids, symbol, operands, near, read):
    """The nodes drawn, as _value_nodes gives them: `symbol(i)` and `operands(i)` of node i,
    its value and grad read[i]."""
    number = {i: k for k, i in enumerate(near)}
    shown = [(ids[i], *read[i], symbol(i), [number.get(j) for j in operands(i)]) for i in near]
    return shown, len(ids)


def _nearest(output, operands, key, limit):
    """Up to `limit` nodes, breadth-first from the output over operands."""
    found, queue, seen = [output], deque([output]), {key(output)}
    while queue and len(found) < limit:
        for child in operands(queue.popleft()):
            if key(child) not in seen and len(found) < limit:
                seen.add(key(child))
                found.append(child)
                queue.append(child)
    return found


def _reading_order(shown):
    """Numbers of the shown nodes, operands first and in operand order (x1 before w1):
    Graphviz stacks a rank's nodes roughly as they come, so the picture reads so too."""
    order, done = [], set()
    for start in range(len(shown)):  # 0, the output, first; then what does not feed it
        stack = [start]
        while stack:
            k = stack.pop()
            if k < 0:
                order.append(~k)
            elif k not in done:
                done.add(k)
                stack.append(~k)  # placed once its operands are
                stack.extend(j for j in reversed(shown[k][4]) if j is not None and j not in done)
    return order


def _body(shown, total, limit):
    lines = []
    for k in _reading_order(shown):
        label, data, grad, op, operands = shown[k]
        text = str(label).translate(_RECORD_ESCAPES)
        fields = f"{{ {text} | data {data:.4f} | grad {grad:.4f} }}"  # the lecture's record
        lines.append(f'\tv{k} [label="{fields}" shape=record]\n')
        if not op:
            continue
        lines.append(f'\tv{k}_op [label="{op.translate(_ESCAPES)}"]\n')
        lines.append(f"\tv{k}_op -> v{k}\n")
        lines += [f"\tv{j} -> v{k}_op\n" for j in operands if j is not None]
        cut = operands.count(None)
        if cut:
            hidden = f"{cut} input{'s' if cut > 1 else ''} not shown"
            lines.append(f'\tv{k}_cut [label="{hidden}" shape=plaintext fontsize=10]\n')
            lines.append(f"\tv{k}_cut -> v{k}_op [style=dashed]\n")
    if total > len(shown):
        note = (
            f"showing {len(shown)} of {total} values: the {len(shown)} nearest the output "
            f"(max_nodes={limit})"
        )
        lines.append(f'\tnote [label="{note}" shape=note]\n')
    return lines
