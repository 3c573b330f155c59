"""graph/1 evaluation on the compiled path: a batch of one, level-grouped.

A graph decoded into columns (engine.columns) is run as it is: its arrays are the tape's,
its op names and operand tuples are views made only for the few nodes that need them
(the narrow levels that run on Python floats, a node named in an error). The result is
written from the value and gradient arrays (`result_json`), never through dicts."""

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import orjson

from ..arraydict import ArrayDict, Positions
from ..columns import GraphColumns
from ..ops import NAMES
from .program import Program
from .tape import from_parsed

_NAMES = np.array(NAMES, dtype=object)
LISTS_AFTER = 4096  # lookups of single nodes before a column is copied to a list, for speed


class OpNames(Sequence):
    """The op names of a column of op codes, as a tape's `ops` list reads."""

    def __init__(self, codes):
        self.codes = codes
        self._list, self._asked = None, 0

    def __len__(self):
        return len(self.codes)

    def __getitem__(self, i):
        if self._list is None:
            self._asked += 1
            if self._asked < LISTS_AFTER:  # a few nodes: read from the array
                return NAMES[self.codes[i]]
            self._list = _NAMES[self.codes].tolist()  # many (a deep graph): a list
        return self._list[i]

    def __iter__(self):
        return iter(_NAMES[self.codes].tolist())


class Operands(Sequence):
    """Each node's operand indices as a tuple, as a tape's `inputs` list reads."""

    def __init__(self, ptr, flat):
        self.ptr, self.flat = ptr, flat
        self._list, self._asked = None, 0

    def __len__(self):
        return len(self.ptr) - 1

    def __getitem__(self, i):
        if self._list is None:
            self._asked += 1
            if self._asked < LISTS_AFTER:  # a few nodes: sliced from the arrays
                return tuple(self.flat[self.ptr[i] : self.ptr[i + 1]].tolist())
            self._list = _tuples(self.ptr, self.flat)  # many (a deep graph): a list
        return self._list[i]


def _tuples(ptr, flat):
    """Each node's operands as a tuple, for a graph read node by node."""
    starts, flat = ptr.tolist(), flat.tolist()
    return [tuple(flat[a:b]) for a, b in zip(starts, starts[1:], strict=False)]


class ColumnTape(NamedTuple):
    """A tape (tape.py) over a graph's columns: schedule.layout reads codes, ptr and flat
    directly."""

    ids: list
    ops: OpNames
    inputs: Operands
    attrs: list
    outputs: list
    placeholders: tuple = ()
    params: tuple = ()
    codes: np.ndarray | None = None
    ptr: np.ndarray | None = None
    flat: np.ndarray | None = None


def column_tape(columns: GraphColumns) -> ColumnTape:
    return ColumnTape(
        columns.ids,
        OpNames(columns.codes),
        Operands(columns.ptr, columns.flat),
        columns.attrs.tolist(),  # Python floats: the Value engine's errors, word for word
        [columns.output],
        codes=columns.codes,
        ptr=columns.ptr,
        flat=columns.flat,
    )


def run_columns(columns: GraphColumns):
    """(values, grads): every node's value and d(output)/d(node), in node order. A
    non-finite one raises NumericError naming the node, as the Value engine does."""
    program = Program(column_tape(columns))
    program.forward()
    program.backward([[1.0]])
    return program.values(), program.grads()


def evaluate_compiled(parsed):
    """engine.graph.evaluate's result for a ParsedGraph or GraphColumns: the output, its
    value, and every node's value and d(output)/d(node). A non-finite value or gradient
    raises NumericError naming the node, as the Value engine does. `values` and `grads` are
    ArrayDicts: dicts that read the arrays until they are needed whole."""
    if isinstance(parsed, GraphColumns):
        values, grads = run_columns(parsed)
    else:
        program = Program(from_parsed(parsed))
        program.forward()
        program.backward([[1.0]])
        values, grads = program.values(), program.grads()
    ids, out = parsed.ids, parsed.output
    # dicts read from the arrays until they are needed whole (engine.arraydict): two dicts
    # of a million entries would cost more than validating and running the graph
    positions = Positions(ids, getattr(parsed, "index", None))
    return {
        "output": ids[out],
        "value": values.item(out),
        "values": ArrayDict(positions, values),
        "grads": ArrayDict(positions, grads),
    }


def result_json(columns: GraphColumns) -> bytes:
    """The result of evaluating `columns` as JSON text, written column by column: each
    id's `"id":` once, the numbers as orjson writes a float64 array (shortest round trip),
    joined in C. The same document as dumps(evaluate_compiled(columns)), in fewer passes."""
    values, grads = run_columns(columns)
    return json_of_result(columns.ids, columns.output, values, grads)


def json_of_result(ids, output, values, grads) -> bytes:
    """{"output", "value", "values", "grads"} from the id column and two float64 arrays."""
    # ids need no escaping (graph/1 allows none of '"', '\\', controls); the first key
    # opens the object, every other one follows a comma
    keys = ('{"' + '":\n,"'.join(ids) + '":').encode().split(b"\n")
    head = b'{"output":' + orjson.dumps(ids[output]) + b',"value":'
    head += orjson.dumps(float(values[output]))
    return b"".join(
        (head, b',"values":', _object(keys, values), b'},"grads":', _object(keys, grads), b"}}")
    )


def _object(keys, numbers):
    """`keys` and `numbers` interleaved, one join in C (the closing brace is the caller's)."""
    text = orjson.dumps(numbers, option=orjson.OPT_SERIALIZE_NUMPY)  # b"[1.0,-2.5,...]"
    sequence = [b""] * (2 * len(keys))
    sequence[0::2] = keys
    sequence[1::2] = text[1:-1].split(b",")
    return b"".join(sequence)


VALUES, GRADS = b',"values":{', b'},"grads":{'


def entries_of(result: bytes, ids, wanted) -> dict | None:
    """{i: (value, grad)} of the nodes `wanted` (indices into `ids`), read from a result
    without reading the rest of it (to draw 200 nodes of a million); None unless `result`
    is laid out as json_of_result writes it: entry i of `values` and `grads` node i's."""
    start, end = result.find(VALUES) + len(VALUES), result.find(GRADS)
    if start < len(VALUES) or end < start or not result.endswith(b"}}"):
        return None
    objects = ((start, end), (end + len(GRADS), len(result) - 2))
    entries = [_entries(result, a, b, len(ids)) for a, b in objects]
    if any(bounds is None for bounds in entries):
        return None
    read = {}
    for i in wanted:
        pair = []
        for bounds in entries:
            entry = result[int(bounds[i]) + 1 : int(bounds[i + 1])]  # b'"id":number'
            key, _, number = entry.partition(b'":')  # an id may hold ':', never '"'
            if key != b'"' + ids[i].encode():
                return None
            try:
                pair.append(float(number))
            except ValueError:
                return None
        read[i] = tuple(pair)
    return read


def _entries(result, start, end, n):
    """Where the n entries of the object between `start` and `end` begin (after the brace
    or comma at bounds[i]) and end (at bounds[i + 1]): ids and numbers hold no comma."""
    commas = np.flatnonzero(np.frombuffer(result, np.uint8, end - start, start) == ord(","))
    if len(commas) != n - 1:
        return None
    return np.concatenate(([start - 1], commas + start, [end]))
