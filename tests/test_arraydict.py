"""engine.arraydict: the result dicts of a large graph, read from arrays until they are needed
whole, answer every dict operation as the plain dict of the same entries does; evaluate's
result on the array path equals the dict path's and round-trips through json."""

import copy
import json
import pickle

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.shapes import products_and_sum_tree
from engine import evaluate
from engine.arraydict import ArrayDict, Positions
from engine.columns import columns_of
from engine.compiled.evaluate import evaluate_compiled, result_json
from engine.evaluate import COMPILED_FROM_NODES
from engine.graph import evaluate_parsed, parse_graph
from tests.test_compiled import close, graphs
from tests.test_graph import CONTRACT_EXAMPLE

IDS = st.lists(st.text("abcxyz019_.:-", min_size=1, max_size=4), unique=True, max_size=8)
KEYS = st.one_of(st.text("abcxyz019", min_size=1, max_size=4), st.just("q"))
NUMBERS = st.floats(allow_nan=False, allow_infinity=False)

# Each operation as a function of a dict; its result (or the exception it raises) must be
# the same on a plain dict and on an ArrayDict holding the same entries.
READS = [
    ("getitem", lambda d, k: d[k]),
    ("get", lambda d, k: d.get(k)),
    ("get default", lambda d, k: d.get(k, "none")),
    ("in", lambda d, k: k in d),
    ("len", lambda d, k: len(d)),
    ("bool", lambda d, k: bool(d)),
    ("iter", lambda d, k: list(d)),
    ("reversed", lambda d, k: list(reversed(d))),
    ("keys", lambda d, k: list(d.keys())),
    ("values", lambda d, k: list(d.values())),
    ("items", lambda d, k: list(d.items())),
    ("keys view", lambda d, k: d.keys() == {k: 0}.keys() | set(d)),
    ("repr", lambda d, k: repr(d)),
    ("str", lambda d, k: str(d)),
    ("eq dict", lambda d, k: d == dict(zip(list(d), list(d.values()), strict=True))),
    ("eq reversed", lambda d, k: {**d, k: 1.0} == d),
    ("ne", lambda d, k: d != {}),
    ("dict()", lambda d, k: dict(d)),
    ("unpack", lambda d, k: {**d}),
    ("kwargs", lambda d, k: (lambda **kw: kw)(**d)),
    ("or", lambda d, k: d | {k: 1.0}),
    ("ror", lambda d, k: {k: 1.0} | d),
    ("copy", lambda d, k: d.copy()),
    ("copy.copy", lambda d, k: copy.copy(d)),
    ("deepcopy", lambda d, k: copy.deepcopy(d)),
    ("pickle", lambda d, k: pickle.loads(pickle.dumps(d))),
    ("json", lambda d, k: json.dumps(d)),
    ("json nested", lambda d, k: json.dumps({"values": d, "k": k})),
    ("json indent", lambda d, k: json.dumps(d, indent=2, sort_keys=True)),
    ("sorted", lambda d, k: sorted(d)),
    ("isinstance", lambda d, k: isinstance(d, dict)),
    ("hash", lambda d, k: hash(d)),
]
WRITES = [
    ("setitem", lambda d, k: d.__setitem__(k, 9.0)),
    ("delitem", lambda d, k: d.__delitem__(k)),
    ("pop", lambda d, k: d.pop(k)),
    ("pop default", lambda d, k: d.pop(k, None)),
    ("popitem", lambda d, k: d.popitem()),
    ("setdefault", lambda d, k: d.setdefault(k, 7.0)),
    ("update", lambda d, k: d.update({k: 5.0})),
    ("ior", lambda d, k: d.__ior__({k: 4.0})),
    ("clear", lambda d, k: d.clear()),
]


def attempt(op, d, key):
    try:
        return op(d, key)
    except Exception as e:  # the same exception, with the same message, is the point
        return type(e), str(e).replace("ArrayDict", "dict")


def array_dict(ids, numbers):
    return ArrayDict(Positions(ids), np.array(numbers, dtype=float))


@settings(max_examples=200, deadline=None)
@given(st.data(), IDS, st.lists(st.sampled_from(READS + WRITES), max_size=4), KEYS)
def test_every_operation_answers_as_the_plain_dict_does(data, ids, operations, key):
    numbers = data.draw(st.lists(NUMBERS, min_size=len(ids), max_size=len(ids)))
    key = data.draw(st.sampled_from(ids)) if ids and data.draw(st.booleans()) else key
    plain, ours = dict(zip(ids, numbers, strict=True)), array_dict(ids, numbers)
    for name, op in operations:  # a sequence: reads before and after the dict is filled
        assert attempt(op, ours, key) == attempt(op, plain, key), name
    assert ours == plain and list(ours.items()) == list(plain.items())
    assert json.dumps(ours) == json.dumps(plain)


@pytest.mark.parametrize(("name", "op"), READS + WRITES)
def test_each_operation_on_a_fresh_dict(name, op):
    ids, numbers = ["a", "b", "c.1"], [1.5, -2.0, 0.1]
    for key in ("b", "zz"):
        plain, ours = dict(zip(ids, numbers, strict=True)), array_dict(ids, numbers)
        assert attempt(op, ours, key) == attempt(op, plain, key)
        assert ours == plain


def test_single_reads_leave_it_unfilled_and_read_the_array():
    numbers = np.array([1.0, 2.0, 3.0])
    ours = ArrayDict(Positions(["a", "b", "c"], {"a": 0, "b": 1, "c": 2}), numbers)
    reads = (ours["b"], ours.get("c"), "a" in ours, "d" in ours, len(ours))
    assert reads == (2.0, 3.0, True, False, 3)
    assert list(ours) == ["a", "b", "c"] and type(ours["a"]) is float
    assert dict.__len__(ours) == 1  # only the placeholder: nothing was built per entry
    numbers[1] = 5.0  # still read from the array
    assert ours["b"] == 5.0
    assert ours == {"a": 1.0, "b": 5.0, "c": 3.0}  # a whole-dict read fills it...
    numbers[1] = 6.0
    assert ours["b"] == 5.0 and dict.__len__(ours) == 3  # ...once: it is a plain dict now


def test_code_reading_dict_storage_directly_fails_loudly_until_it_is_filled():
    ours = array_dict(["a"], [1.0])
    with pytest.raises(TypeError):  # never a silent "{}"
        orjson.dumps(ours)
    assert orjson.loads(orjson.dumps(dict(ours))) == {"a": 1.0}


# --- evaluate's result on the array path ---


@settings(max_examples=200, deadline=None)
@given(graphs())
def test_the_array_path_result_equals_the_dict_path_result(doc):
    try:
        want = evaluate_parsed(parse_graph(doc))
    except ArithmeticError:  # NumericError: test_columns compares the errors
        return
    got = evaluate_compiled(columns_of(doc))
    assert isinstance(got["values"], ArrayDict) and isinstance(got["grads"], dict)
    for part in ("values", "grads"):
        assert list(got[part]) == list(want[part]) and len(got[part]) == len(want[part])
        assert all(close([got[part][k]], [want[part][k]]) for k in want[part])
        assert close(list(got[part].values()), list(want[part].values()))
    assert json.loads(json.dumps(got)) == got == json.loads(result_json(columns_of(doc)))


def test_evaluate_of_a_large_graph_round_trips_through_json():
    doc = products_and_sum_tree(80)  # 6,399 nodes: the array path
    assert len(doc["nodes"]) >= COMPILED_FROM_NODES
    result = evaluate(doc)
    assert isinstance(result["values"], ArrayDict)
    assert result["grads"]["x3"] == json.loads(json.dumps(result))["grads"]["x3"]
    text = json.dumps(result)
    assert json.loads(text) == result == json.loads(result_json(columns_of(doc)))
    assert dict(result["values"]) == json.loads(text)["values"]
    want = evaluate_parsed(parse_graph(doc))
    assert list(result["grads"]) == list(want["grads"])
    assert close(list(result["grads"].values()), list(want["grads"].values()))


def test_the_contract_example_through_the_compiled_path():
    got = evaluate_compiled(columns_of(CONTRACT_EXAMPLE))
    assert got == {
        "output": "p",
        "value": 8.0,
        "values": {"a": -4.0, "b": 2.0, "c": -2.0, "p": 8.0},
        "grads": {"a": 0.0, "b": 12.0, "c": 0.0, "p": 1.0},
    }
    assert json.loads(json.dumps(got)) == got
