"""A graph/1 document as columns: one array per field instead of a tuple per node.

`GraphColumns` is what a large graph becomes once validated: node i has ids[i], the op
codes[i] (its index in engine.ops.NAMES), operands flat[ptr[i]:ptr[i + 1]] (indices of
earlier nodes) and attrs[i] (a leaf's value, a pow's exponent, else nan). The compiled
program reads the arrays as they are.

`columns_of` validates a decoded document with a handful of C-speed passes over the node
list and a few numpy checks: no Python loop per node. It vouches only for documents with
nothing wrong; anything it cannot vouch for goes to engine.graph.parse_graph, which words
every problem (the same GraphError, the same places) or, for a valid document the fast
checks did not cover, gives a ParsedGraph that is turned into columns.
"""

import itertools
import operator
import struct
from typing import NamedTuple

import numpy as np

from .graph import FORMAT, ParsedGraph, parse_graph
from .ops import NAMES, OPS

CODE = {name: code for code, name in enumerate(NAMES)}
INPUT, POW = CODE["input"], CODE["pow"]
UNBOUNDED = 1 << 30
LOW = np.array([op.min_inputs for op in OPS], np.intp)
HIGH = np.array([UNBOUNDED if op.max_inputs is None else op.max_inputs for op in OPS], np.intp)
# The ops with an attribute: the fast pass knows pow's exponent, and no other.
assert [op.name for op in OPS if op.attr] == ["pow"] and OPS[POW].attr == "exponent"
_NUMBERS = {int, float}
_ID_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-\n"


class GraphColumns(NamedTuple):
    ids: list  # node id strings, in document order
    codes: np.ndarray  # int8: index of the op in engine.ops.NAMES
    ptr: np.ndarray  # intp, n + 1: node i's operands are flat[ptr[i]:ptr[i + 1]]
    flat: np.ndarray  # intp: operand node indices
    attrs: np.ndarray  # float64: a leaf's value, a pow's exponent, nan elsewhere
    output: int
    index: dict | None = None  # id -> i, when validation built it (results look ids up in it)


def columns_of(doc, max_nodes=None):
    """Validate a graph/1 document into GraphColumns; a GraphError lists what is wrong,
    exactly as parse_graph words it."""
    fast = vouched_columns(doc, max_nodes)
    if fast is not None:
        return fast
    return columns_from_parsed(parse_graph(doc, max_nodes))


def columns_from_parsed(parsed: ParsedGraph):
    """The columns of a graph parse_graph validated."""
    n = len(parsed.ids)
    codes = np.fromiter(map(CODE.__getitem__, parsed.ops), np.int8, n)
    arity = np.fromiter(map(len, parsed.inputs), np.intp, n)
    ptr = np.zeros(n + 1, np.intp)
    np.cumsum(arity, out=ptr[1:])
    flat = np.fromiter(itertools.chain.from_iterable(parsed.inputs), np.intp, int(ptr[-1]))
    attrs = np.array([np.nan if a is None else float(a) for a in parsed.attrs], float)
    return GraphColumns(list(parsed.ids), codes, ptr, flat, attrs, parsed.output)


def vouched_columns(doc, max_nodes=None):
    """The columns of a document with nothing wrong, or None: then parse_graph decides. A
    document it vouches for has the fields of graph/1 and no others: "format", "nodes"
    and "output" at the top; on each node "id", "op", and "inputs" (a list of ids),
    "value" (a leaf's) and "attrs" (pow's {"exponent": x}, else {}) where given."""
    if doc.__class__ is not dict or not doc.keys() <= {"format", "nodes", "output"}:
        return None
    nodes = doc.get("nodes")
    if nodes.__class__ is not list or not nodes or doc.get("format", FORMAT) != FORMAT:
        return None
    n = len(nodes)
    if max_nodes is not None and n > max_nodes:
        return None
    try:
        ids = list(map(operator.itemgetter("id"), nodes))
        ops = list(map(operator.itemgetter("op"), nodes))
        codes = np.fromiter(map(CODE.__getitem__, ops), np.int8, n)
        if not _ids_fit(ids, n):
            return None
        index = dict(zip(ids, range(n), strict=True))
        if len(index) != n:  # a duplicate id
            return None
        columns = _operands(nodes, codes, index, n)
    except (KeyError, TypeError, OverflowError):
        return None
    if columns is None:
        return None
    ptr, flat, present = columns
    attrs = _attributes(nodes, codes, n, present)
    if attrs is None:
        return None
    output = doc.get("output", ids[-1])
    if output.__class__ is not str or output not in index:
        return None
    return GraphColumns(ids, codes, ptr, flat, attrs, index[output], index)


def _ids_fit(ids, n):
    """Every id 1 to 64 characters of A-Z a-z 0-9 _ . : - (one pass in C over them all)."""
    joined = "\n".join(ids).encode(errors="surrogatepass")  # a TypeError if one is no str
    # Deleting every allowed character (and the newlines) leaves nothing; a non-ASCII
    # character leaves its UTF-8 bytes.
    if joined.translate(None, _ID_BYTES):
        return False
    # ASCII, one byte per character: the lengths lie between the newlines
    newlines = np.flatnonzero(np.frombuffer(joined, np.uint8) == ord("\n"))
    if len(newlines) != n - 1:  # an id with a newline of its own
        return False
    lengths = np.diff(newlines, prepend=-1, append=len(joined)) - 1
    return bool(((lengths >= 1) & (lengths <= 64)).all())


def _operands(nodes, codes, index, n):
    """(ptr, flat, fields present) when every node's inputs are a list of ids of earlier
    nodes, as many as its op takes; else None."""
    inputs = list(map(dict.get, nodes, itertools.repeat("inputs"), itertools.repeat(())))
    # Lists, and () where none are given (a () given is an extra field: the count of
    # fields finds it)
    absent = inputs.count(())
    if list(map(type, inputs)).count(list) + absent != n:
        return None
    with_inputs = n - absent
    arity = np.fromiter(map(len, inputs), np.intp, n)
    if not ((LOW[codes] <= arity) & (arity <= HIGH[codes])).all():
        return None
    ptr = np.zeros(n + 1, np.intp)
    np.cumsum(arity, out=ptr[1:])
    # The index's keys are strings: a name that is not one is a KeyError or a TypeError.
    names = itertools.chain.from_iterable(inputs)
    flat = np.fromiter(map(index.__getitem__, names), np.intp, int(ptr[-1]))
    # Operands come before their node: that rules out cycles, self and forward references.
    if len(flat) and not (flat < np.repeat(np.arange(n), arity)).all():
        return None
    return ptr, flat, 2 * n + with_inputs


def _attributes(nodes, codes, n, present):
    """The attrs column when leaves have a finite value, pows a finite exponent, every
    other node neither, and no node a field besides; else None."""
    leaves, pows = codes == INPUT, codes == POW
    # Values are read on leaves only: a value on any other node is a field too many, which
    # the count of fields below finds.
    leaf_nodes = itertools.compress(nodes, leaves.tolist())
    leaf_values = list(map(dict.get, leaf_nodes, itertools.repeat("value")))
    if not {*map(type, leaf_values)} <= _NUMBERS:
        return None
    attrs = list(map(dict.get, nodes, itertools.repeat("attrs")))
    given = n - attrs.count(None)
    exponents = [
        a.get("exponent") if a.__class__ is dict and len(a) == 1 else None
        for a in itertools.compress(attrs, pows.tolist())
    ]
    empty = attrs.count({}) if given else 0  # {} is allowed on every op but pow (above)
    if given != len(exponents) + empty or not {*map(type, exponents)} <= _NUMBERS:
        return None
    # Fields: id and op on every node (itemgetter saw them), inputs where counted, value on
    # leaves, attrs as counted; a node with any other field (or a null) has more.
    if sum(map(len, nodes)) != present + len(leaf_values) + given:
        return None
    column = np.full(n, np.nan)
    try:
        column[leaves] = leaf_values
        column[pows] = exponents
    except OverflowError:  # an integer beyond floats
        return None
    finite = np.isfinite(column)
    if not (finite[leaves].all() and finite[pows].all()):
        return None
    return column


# --- columns as bytes: how a queued graph travels from the API to a worker ---

PACKED = b"graph/1 columns\n"  # no JSON document starts so
_HEADER = struct.Struct("<4q")  # nodes, operands, output, bytes of the ids


def is_packed(data: bytes) -> bool:
    return data.startswith(PACKED)


def pack(columns: GraphColumns) -> bytes:
    """The columns as one byte string: a header, the arrays (operand indices as int32 when
    they fit), then the ids joined by newlines (they hold none)."""
    n, m = len(columns.ids), len(columns.flat)
    ids = "\n".join(columns.ids).encode()
    index = _index_type(n)
    return b"".join(
        (
            PACKED,
            _HEADER.pack(n, m, columns.output, len(ids)),
            columns.codes.astype(np.int8).tobytes(),
            columns.ptr.astype(index).tobytes(),
            columns.flat.astype(index).tobytes(),
            columns.attrs.astype("<f8").tobytes(),
            ids,
        )
    )


def unpack(data: bytes) -> GraphColumns:
    """The columns `pack` wrote (the arrays read in place where their type allows)."""
    at = len(PACKED)
    n, m, output, id_bytes = _HEADER.unpack_from(data, at)
    at += _HEADER.size
    index = _index_type(n)

    def take(dtype, count):
        nonlocal at
        array = np.frombuffer(data, dtype, count, at)
        at += array.nbytes
        return array

    codes = take(np.int8, n)
    ptr = take(index, n + 1).astype(np.intp)
    flat = take(index, m).astype(np.intp)
    attrs = take("<f8", n).astype(float)
    ids = data[at : at + id_bytes].decode().split("\n")
    return GraphColumns(ids, codes, ptr, flat, attrs, output)


def _index_type(n):
    return np.dtype("<i4") if n < 2**31 - 1 else np.dtype("<i8")
