"""The `graph/1` format: validation, evaluation on the Value engine (values and
gradients), and `to_graph`, the way back from a `Value` expression to a document. The ops
are engine.ops's; engine.evaluate chooses between this evaluation and the compiled one."""

import itertools
import math
import re
from typing import NamedTuple

from .errors import GraphError, NumericError
from .numbers import finite_float
from .ops import BY_NAME, NAMES, OPS, op_of_label
from .value import Value, paused_gc, topological_order

FORMAT = "graph/1"
ID_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_ID_LINES = re.compile(r"[A-Za-z0-9_.:-]{1,64}(?:\n[A-Za-z0-9_.:-]{1,64})*")
# op: (fewest inputs, most inputs or None, the name of its attribute or None)
SHAPES = {op.name: (op.min_inputs, op.max_inputs, op.attr) for op in OPS}
NODE_FIELDS = {"id", "op", "inputs", "value", "attrs"}
MAX_ERRORS = 50  # enough to fix a document by; a broken 10^5-node graph is not listed in full


class ParsedGraph(NamedTuple):
    """A validated graph: node i has ids[i], ops[i], inputs[i] (indices of earlier nodes)
    and attrs[i] (the value of an input, the exponent of a pow, else None)."""

    ids: list
    ops: list
    inputs: list
    attrs: list
    output: int


def parse_graph(doc, max_nodes=None):
    """Validate a graph/1 document; raise GraphError listing each bad place."""
    errors = []

    def error(path, message):
        errors.append({"path": path, "message": message})
        if len(errors) >= MAX_ERRORS:
            raise GraphError(errors)

    if not isinstance(doc, dict):
        raise GraphError([{"path": "", "message": "a graph is a JSON object"}])
    for key in doc.keys() - {"format", "nodes", "output"}:
        error(key, "unknown field")
    if doc.get("format", FORMAT) != FORMAT:
        error("format", f"unknown format {doc['format']!r}: this service reads {FORMAT!r}")
    nodes = doc.get("nodes")
    if not isinstance(nodes, list) or not nodes:
        error("nodes", "a graph needs a non-empty list of nodes")
        raise GraphError(errors)
    if max_nodes is not None and len(nodes) > max_nodes:
        error("nodes", f"{len(nodes)} nodes is over the limit of {max_nodes}")
        raise GraphError(errors)

    fast = _parse_valid_nodes(nodes)
    index, ids, ops, inputs, attrs = fast or _parse_nodes(nodes, error)

    output = doc.get("output", ids[-1])
    if ("output" in doc or not errors) and (not isinstance(output, str) or output not in index):
        error("output", f"output {output!r} is not the id of a node")
    if errors:
        raise GraphError(errors)
    return ParsedGraph(ids, ops, inputs, attrs, index[output])


def _parse_nodes(nodes, error):
    """The checking pass: every problem of every node, reported through `error`."""
    index, ids, ops, inputs, attrs = {}, [], [], [], []
    for i, node in enumerate(nodes):
        where = f"nodes/{i}"
        if not isinstance(node, dict):
            error(where, "a node is a JSON object")
            node = {}
        if not NODE_FIELDS.issuperset(node):
            for key in sorted(node.keys() - NODE_FIELDS):
                error(f"{where}/{key}", "unknown field")
        node_id, op = node.get("id"), node.get("op")
        if not isinstance(node_id, str) or not ID_PATTERN.fullmatch(node_id):
            error(f"{where}/id", "an id is 1 to 64 characters of A-Z a-z 0-9 _ . : -")
        elif node_id in index:
            error(f"{where}/id", f"duplicate id {node_id!r} (first at nodes/{index[node_id]})")
        if not isinstance(op, str) or op not in SHAPES:
            error(f"{where}/op", f"unknown op {op!r}; ops are {', '.join(NAMES)}")
            op = None  # its inputs are still checked; its attrs cannot be judged
        ids.append(node_id)
        ops.append(op)
        inputs.append(_node_inputs(node, op, where, index, error))
        attrs.append(_node_attr(node, op, where, error))
        if isinstance(node_id, str) and node_id not in index:
            index[node_id] = i

    return index, ids, ops, inputs, attrs


def _parse_valid_nodes(nodes):
    """The fast pass, for documents with nothing wrong: one tight loop, no messages. Any
    anomaly gives None, and _parse_nodes finds and words it."""
    index, ids, ops, inputs, attrs = {}, [], [], [], []
    shapes, lookup = SHAPES, index.__getitem__
    try:
        for i, node in enumerate(nodes):
            node_id, op = node["id"], node["op"]
            low, high, attr_name = shapes[op]
            # Three fields are the usual node (id, op, and inputs or value: the lookups below
            # fail on any other third); only larger nodes need the full field check.
            if node_id in index or (len(node) > 3 and not _fields_fit(node, op, attr_name)):
                return None
            if op == "input":
                attr = node["value"]
                if finite_float(attr) is None:
                    return None
                refs = ()
            else:
                names = node["inputs"]
                if names.__class__ is not list:
                    return None
                refs = tuple(map(lookup, names))  # KeyError: an unknown or later node
                if len(refs) < low or (high is not None and len(refs) > high):
                    return None
                attr = None
                if attr_name is not None:
                    attr = node["attrs"][attr_name]
                    if finite_float(attr) is None:
                        return None
            index[node_id] = i
            ids.append(node_id)
            ops.append(op)
            inputs.append(refs)
            attrs.append(attr)
        # Every id at once: one scan in C instead of a regex call per node. A join of
        # non-strings is a TypeError; an id with a newline of its own adds a line.
        joined = "\n".join(ids)
        if joined.count("\n") != len(ids) - 1 or not _ID_LINES.fullmatch(joined):
            return None
    except (KeyError, TypeError, AttributeError):
        return None
    return index, ids, ops, inputs, attrs


def _fields_fit(node, op, attr_name):
    """A node of more than three fields, as the fast pass accepts it: known fields only,
    inputs [] and attrs {} as the only extras of an input, attrs only {exponent} on a pow."""
    if not NODE_FIELDS.issuperset(node):
        return False
    node_attrs = node.get("attrs", {})
    if op == "input":
        return node.get("inputs", []) == [] and node_attrs == {}
    if "value" in node or node_attrs.__class__ is not dict:
        return False
    return node_attrs.keys() == {attr_name} if attr_name else not node_attrs


def _node_inputs(node, op, where, index, error):
    names = node.get("inputs", [])
    if not isinstance(names, list):
        error(f"{where}/inputs", "inputs is a list of node ids")
        return ()
    low, high, _ = SHAPES.get(op, (0, None, None))
    if op in SHAPES and not low <= len(names) <= (high if high is not None else len(names)):
        count = {0: "no inputs", 1: "1 input"}.get(high, f"{low} inputs")
        count = count if low == high else f"{low} or more inputs"
        error(f"{where}/inputs", f"{op} takes {count}, not {len(names)}")
    found = []
    for j, name in enumerate(names):
        if not isinstance(name, str):
            error(f"{where}/inputs/{j}", "an input is a node id (a string)")
        elif name not in index:
            error(
                f"{where}/inputs/{j}",
                f"unknown node {name!r}: inputs must name earlier "
                "nodes (nodes are listed in topological order)",
            )
        else:
            found.append(index[name])
    return tuple(found)


def _node_attr(node, op, where, error):
    if op is None:
        return None
    attr_name = SHAPES[op][2]
    node_attrs = node.get("attrs", {})
    if not isinstance(node_attrs, dict):
        error(f"{where}/attrs", "attrs is a JSON object")
        node_attrs = {}
    if attr_name is None:
        for key in node_attrs:
            error(f"{where}/attrs/{key}", f"{op} takes no attrs")
    if op == "input":
        if finite_float(node.get("value")) is None:
            error(f"{where}/value", "an input needs a finite number as its value")
        return node.get("value")
    if "value" in node:
        error(f"{where}/value", f"only input nodes have a value, not {op}")
    if attr_name is None:
        return None
    for key in node_attrs.keys() - {attr_name}:
        error(f"{where}/attrs/{key}", f"unknown attr: {op} takes only {attr_name!r}")
    if finite_float(node_attrs.get(attr_name)) is None:
        error(f"{where}/attrs/{attr_name}", f"{op} needs a finite number as its {attr_name}")
    return node_attrs.get(attr_name)


# op: its node on Values, from its operands and attribute (an input's is its value)
ON_VALUES = {op.name: op.on_values for op in OPS} | {"input": lambda args, value: Value(value)}
_FORWARD = {op.name: op.forward for op in OPS if op.forward}
_BACKWARD = {op.name: op.backward for op in OPS if op.backward}


def apply_op(op, args, attr):
    """One graph/1 op on Values (the compiled path words its errors with it too)."""
    return ON_VALUES[op](args, attr)


def evaluate_parsed(parsed):
    """Values and gradients of a ParsedGraph: on Python floats when each is finite (2 to 5
    times as fast: no Value, closure or topological sort per node), else on the Value
    engine, whose NumericError names the node."""
    return _on_floats(parsed) or evaluate_on_values(parsed)


def _on_floats(parsed):
    """The Value engine's arithmetic op by op (engine.ops's float forms), gradients summed
    from the output back in document order (a topological order: operands come first), so
    a gradient where three or more shares meet may round otherwise than Value.backward()'s
    (tests hold the two within 1e-12 of the shares' size). None when a value or gradient is
    not finite."""
    ids, ops, inputs, attrs, out = parsed
    values = []
    append = values.append
    try:
        for op, refs, attr in zip(ops, inputs, attrs, strict=True):
            if not refs:  # an input: its value
                y = float(attr)
            elif op == "add" and len(refs) == 2:  # most nodes: inline, no call
                y = values[refs[0]] + values[refs[1]]
            elif op == "mul" and len(refs) == 2:
                y = values[refs[0]] * values[refs[1]]
            else:
                y = _FORWARD[op]([values[j] for j in refs], attr)
            if y - y:  # inf or nan
                return None
            append(y)
    except (ArithmeticError, ValueError):
        return None
    grads, used = [0.0] * len(values), [False] * len(values)
    grads[out], used[out] = 1.0, True
    for i in range(out, -1, -1):  # only the nodes the output uses, as backward() walks
        refs = inputs[i]
        if not (used[i] and refs):
            continue
        g, op = grads[i], ops[i]
        if len(refs) == 2 and (op == "add" or op == "mul"):  # inline, as in the forward pass
            a, b = refs
            grads[a] += g if op == "add" else values[b] * g
            grads[b] += g if op == "add" else values[a] * g
            used[a] = used[b] = True
            continue
        shares = _BACKWARD[op]([values[j] for j in refs], values[i], g, attrs[i])
        for j, share in zip(refs, shares, strict=True):
            grads[j] += share
            used[j] = True
    for g in grads:
        if g - g:
            return None
    return {
        "output": ids[out],
        "value": values[out],
        "values": dict(zip(ids, values, strict=True)),
        "grads": dict(zip(ids, grads, strict=True)),
    }


def evaluate_on_values(parsed):
    """Evaluate a ParsedGraph on the Value engine; a NumericError names the node."""
    ids, values, on_values = parsed.ids, [], ON_VALUES
    with paused_gc():
        for i, (op, inputs, attr) in enumerate(
            zip(parsed.ops, parsed.inputs, parsed.attrs, strict=True)
        ):
            try:
                values.append(on_values[op]([values[j] for j in inputs], attr))
            except NumericError as exc:
                raise _at_node(exc, ids[i]) from None
        out = values[parsed.output]
        try:
            out.backward()
        except NumericError as exc:
            raise _at_node(exc, ids[_owner(values, exc.value)]) from None
    return {
        "output": ids[parsed.output],
        "value": out.data,
        "values": {ids[i]: v.data for i, v in enumerate(values)},
        "grads": {ids[i]: v.grad for i, v in enumerate(values)},
    }


def _at_node(exc, node_id):
    return NumericError(f"node {node_id!r}: {exc}", op=exc.op, node=node_id)


def _owner(values, culprit):
    """The index of the node whose Values include `culprit` (an op may build several)."""
    owned = {id(v): i for i, v in enumerate(values)}
    for i, v in enumerate(values):
        stack = [v]
        while stack:
            w = stack.pop()
            if w is culprit:
                return i
            stack.extend(c for c in w._prev if id(c) not in owned)
    return len(values) - 1


def to_graph(output, names=None):
    """The graph/1 document of a Value expression. `names` ({"a": a, ...}) gives chosen
    ids to some Values; the others are numbered n0, n1, ... in topological order."""
    chosen = {id(v): name for name, v in (names or {}).items()}
    for name in chosen.values():
        if not isinstance(name, str) or not ID_PATTERN.fullmatch(name):
            raise ValueError(f"{name!r} is not a graph/1 id (1 to 64 of A-Z a-z 0-9 _ . : -)")
    taken = set(chosen.values())
    numbered = (f"n{i}" for i in itertools.count() if f"n{i}" not in taken)
    node_ids, nodes = {}, []
    for v in topological_order(output):
        node_id = chosen.get(id(v)) or next(numbered)
        node_ids[id(v)] = node_id
        node = {"id": node_id}
        if not v._prev:
            if not math.isfinite(v.data):
                raise ValueError(f"leaf {node_id!r} holds {v.data}, which graph/1 cannot carry")
            node.update(op="input", value=v.data)
        else:
            op, attr = op_of_label(v._op)
            node.update(op=op, inputs=[node_ids[id(c)] for c in v._prev])
            if attr is not None:
                node["attrs"] = {BY_NAME[op].attr: attr}
        nodes.append(node)
    return {"format": FORMAT, "nodes": nodes, "output": node_ids[id(output)]}


def __getattr__(name):
    # engine.graph.evaluate, as earlier versions exported it: engine.evaluate's, looked up only
    # when asked for, since that module reads this one (and the compiled path) first.
    if name == "evaluate":
        from .evaluate import evaluate

        return evaluate
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
