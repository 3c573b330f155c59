"""service/api/jsonbody.py: the fast path (orjson and its screens) and the exact path read
every body to the same document the standard library does, and refuse what is beyond the
limits, naming the place, whichever path sees it."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.api import jsonbody
from service.api.jsonbody import load_body
from service.errors import JsonNotAccepted

DEPTH, DIGITS = 64, 100

# Keys and strings with the characters the screens care about: brackets, quotes, colons,
# backslashes (escaped by json.dumps), digits and non-ASCII text.
TEXT = st.text(alphabet=st.sampled_from('ab:[]{}"\\1é '), max_size=6)
NUMBERS = st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False, allow_infinity=False)


def objects_as_pairs(children):
    """An object as its list of pairs, a key possibly repeated."""
    return st.lists(st.tuples(st.sampled_from(["a", "b", "c:d", "[e]"]), children), max_size=4)


TREES = st.recursive(
    st.none() | st.booleans() | NUMBERS | TEXT,
    lambda children: st.lists(children, max_size=4) | objects_as_pairs(children),
    max_leaves=30,
)


def write(tree, ensure_ascii):
    """JSON text of a tree whose objects are lists of pairs (so keys may repeat)."""
    if isinstance(tree, list) and all(isinstance(p, tuple) for p in tree) and tree:
        inner = ", ".join(f"{json.dumps(k)}: {write(v, ensure_ascii)}" for k, v in tree)
        return "{" + inner + "}"
    if isinstance(tree, list):
        return "[" + ", ".join(write(v, ensure_ascii) for v in tree) + "]"
    return json.dumps(tree, ensure_ascii=ensure_ascii)


def repeats_a_key(tree):
    if isinstance(tree, list) and all(isinstance(p, tuple) for p in tree) and tree:
        keys = [k for k, _ in tree]
        return len(set(keys)) < len(keys) or any(repeats_a_key(v) for _, v in tree)
    if isinstance(tree, list):
        return any(repeats_a_key(v) for v in tree)
    return False


@given(TREES, st.booleans())
def test_a_body_reads_as_the_standard_library_reads_it_unless_a_key_repeats(tree, ascii_only):
    text = write(tree, ascii_only)
    if repeats_a_key(tree):
        with pytest.raises(JsonNotAccepted) as refused:
            load_body(text.encode(), DEPTH, DIGITS)
        assert "appears more than once" in refused.value.errors[0]["message"]
    else:
        assert load_body(text.encode(), DEPTH, DIGITS) == json.loads(text)


def nesting(value) -> int:
    """How deep a decoded document nests (the oracle: a walk, not the screen's bytes)."""
    if isinstance(value, dict):
        return 1 + max(map(nesting, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(nesting, value), default=0)
    return 0


@given(TREES)
def test_the_screen_finds_how_deep_a_body_nests_small_or_large(tree):
    if repeats_a_key(tree):  # the standard library keeps one value of a repeated key
        return
    body = write(tree, True).encode()
    found = jsonbody._plain_depth(body)
    if found is not None:  # None: a string holds a mark; the exact path decides
        assert found == nesting(json.loads(body))
        many = b",".join([b"[]"] * (jsonbody.SMALL_STRUCTURE // 2))  # past the small way
        assert jsonbody._plain_depth(b"[" + body + b"," + many + b"]") == max(found, 1) + 1


@pytest.mark.parametrize("depth", [1, 4, 63, 64])
def test_nesting_up_to_the_limit_is_read(depth):
    body = ("[" * depth + "]" * depth).encode()
    assert load_body(body, DEPTH, DIGITS) == json.loads(body)


@pytest.mark.parametrize(
    "body, path",
    [
        ("[" * 65 + "]" * 65, "0" * 1 + "/0" * 63),
        ('{"a": ' * 65 + "1" + "}" * 65, "/".join("a" * 64)),
        ('{"s": "[[[", "x": ' + "[" * 65 + "]" * 65 + "}", "x" + "/0" * 63),  # slow screen
        ("[" * 2000 + "]" * 2000, ""),  # past orjson's own limit: no path to name
        ("[" * 100_000 + "]" * 100_000, ""),
    ],
)
def test_nesting_past_the_limit_names_the_first_place_too_deep(body, path):
    with pytest.raises(JsonNotAccepted) as refused:
        load_body(body.encode(), DEPTH, DIGITS)
    assert refused.value.errors[0] == {
        "path": path,
        "message": "nested more than 64 levels deep; at most 64 are accepted",
    }


@pytest.mark.parametrize(
    "number, digits",
    [("1" + "0" * 5000, 5001), ("-0." + "1" * 101, 102), ("1" * 60 + "." + "2" * 60, 120)],
)
def test_a_number_of_too_many_digits_is_named(number, digits):
    with pytest.raises(JsonNotAccepted) as refused:
        load_body(f'{{"x": [1, {number}]}}'.encode(), DEPTH, DIGITS)
    assert refused.value.errors == [
        {"path": "x/1", "message": f"a number of {digits} digits; at most 100 are accepted"}
    ]


def test_numbers_up_to_the_limit_and_long_digit_strings_are_read():
    hundred = "1" + "0" * 99  # beyond 64 bits: read as a float
    body = f'{{"n": {hundred}, "f": 0.{"3" * 99}, "s": "{"9" * 500}"}}'
    assert load_body(body.encode(), DEPTH, DIGITS) == {
        "n": 1e99,
        "f": float("0." + "3" * 99),
        "s": "9" * 500,
    }


def test_an_integer_beyond_64_bits_is_a_float_on_both_paths():
    fast = load_body(b'{"n": 18446744073709551616}', DEPTH, DIGITS)
    exact = load_body(b'{"s": "\\n", "n": 18446744073709551616}', DEPTH, DIGITS)  # escapes
    assert fast["n"] == exact["n"] == 2.0**64 and type(fast["n"]) is type(exact["n"]) is float
    assert load_body(b"[18446744073709551615]", DEPTH, DIGITS) == [2**64 - 1]


def test_duplicates_are_named_at_every_depth_up_to_ten_places():
    body = '{"a": 1, "b": {"c": [{"d": 1, "d": 2}]}, "a": 2, ' + ", ".join(
        f'"k{i}": {{"x": 1, "x": 1}}' for i in range(20)
    )
    with pytest.raises(JsonNotAccepted) as refused:
        load_body((body + "}").encode(), DEPTH, DIGITS)
    paths = [e["path"] for e in refused.value.errors]
    assert paths[:3] == ["a", "b/c/0/d", "k0/x"] and len(paths) == jsonbody.MAX_ERRORS
    assert refused.value.detail.startswith("a: the key 'a' appears more than once")


def test_an_escaped_colon_does_not_hide_a_duplicate():
    # Two ':' spelled as escapes would make up for the duplicate's ':' in a plain count.
    body = b'{"a": 1, "a": 2, "\\u003a\\u003A": 3}'
    with pytest.raises(JsonNotAccepted):
        load_body(body, DEPTH, DIGITS)


@pytest.mark.parametrize("body", [b"[NaN]", b'{"a": -Infinity}', b"{nodes", b"[1,]", b""])
def test_what_is_not_json_is_a_decode_error(body):
    with pytest.raises(json.JSONDecodeError) as error:
        load_body(body, DEPTH, DIGITS)
    if b"NaN" in body or b"Infinity" in body:
        assert "is not JSON (numbers must be finite)" in str(error.value)
