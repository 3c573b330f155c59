"""service/strictjson.py's fast_dumps: orjson's text for what the service computed itself,
read back as the value it wrote, and never a NaN or an infinity written as null."""

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.strictjson import dumps, fast_dumps, loads

FLOATS = st.floats(allow_nan=False, allow_infinity=False)
RESULTS = st.fixed_dictionaries(
    {"output": st.text(), "value": FLOATS, "values": st.dictionaries(st.text(), FLOATS)}
)


@given(RESULTS)
def test_it_reads_back_as_the_value_and_as_dumps_text_reads(result):
    text = fast_dumps(result)
    assert loads(text) == result == json.loads(dumps(result))
    assert all(
        math.copysign(1, v) == math.copysign(1, w)
        for v, w in zip(loads(text)["values"].values(), result["values"].values(), strict=True)
    )


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_a_nan_or_an_infinity_raises_as_dumps_does(number):
    with pytest.raises(ValueError):
        fast_dumps({"values": {"a": 1.0, "b": number}})


def test_a_null_and_a_string_saying_null_are_written_as_they_are():
    value = {"null": None, "id": "nullable", "x": [1.5e-7, 1e16]}
    assert loads(fast_dumps(value)) == value
