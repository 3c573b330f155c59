"""`ArrayDict`: the {node id: number} dicts of a large graph's result, read from the value
or gradient array until they are needed whole.

Building a dict of a million entries costs about 0.3 s (hashing and placing every id), and
`evaluate` returns two. An ArrayDict is a real dict (isinstance, json.dumps, ==, dict(...),
pickle) that stays empty until a caller asks for more than single entries: `d[id]`,
`d.get(id)`, `id in d`, `len(d)` and iteration read the id list and the array; anything
else (items(), values(), ==, repr, json, a change, a copy) fills the dict first, once, and
from then on it is an ordinary dict.

Until it is filled, its own storage holds one placeholder entry whose key is not a string:
the json module's encoder skips the items() of an empty dict (the placeholder keeps it from
looking empty), and C code that reads a dict's storage without its methods (orjson) fails
loudly on it instead of writing `{}`. Such code reads `dict(d)` instead.
"""

import numpy as np


class _Unread:
    def __repr__(self) -> str:
        return "<ArrayDict not yet filled>"


UNREAD = _Unread()


class Positions:
    """Each id's index in the id list, shared by the dicts of one result (the dict of ids
    that validation built, or one made on the first lookup)."""

    __slots__ = ("ids", "_index")

    def __init__(self, ids, index=None):
        self.ids, self._index = ids, index

    def of(self, key):
        """The index of `key` (KeyError if there is none; TypeError if unhashable)."""
        if self._index is None:
            self._index = dict(zip(self.ids, range(len(self.ids)), strict=True))
        return self._index[key]


class ArrayDict(dict):
    """{ids[i]: float(numbers[i])}, the same dict in every way, filled on demand."""

    __slots__ = ("_positions", "_numbers")

    def __init__(self, positions: Positions, numbers: np.ndarray):
        dict.__init__(self, {UNREAD: None})
        self._positions, self._numbers = positions, numbers

    def _fill(self):
        """Become the whole dict (once): from here on dict's own methods answer."""
        numbers = self._numbers
        if numbers is not None:
            self._numbers = None
            dict.clear(self)
            dict.update(self, zip(self._positions.ids, numbers.tolist(), strict=True))

    # --- read without filling ---

    def __getitem__(self, key):
        if self._numbers is None:
            return dict.__getitem__(self, key)
        return self._numbers.item(self._positions.of(key))

    def get(self, key, default=None):
        if self._numbers is None:
            return dict.get(self, key, default)
        try:
            return self._numbers.item(self._positions.of(key))
        except KeyError:
            return default

    def __contains__(self, key):
        if self._numbers is None:
            return dict.__contains__(self, key)
        try:
            self._positions.of(key)
        except KeyError:
            return False
        return True

    def __len__(self):
        return dict.__len__(self) if self._numbers is None else len(self._positions.ids)

    def __iter__(self):
        return dict.__iter__(self) if self._numbers is None else iter(self._positions.ids)

    def __reversed__(self):
        if self._numbers is None:
            return dict.__reversed__(self)
        return reversed(self._positions.ids)

    # --- everything else: fill, then ask dict ---

    def __eq__(self, other):
        self._fill()
        if isinstance(other, ArrayDict):
            other._fill()
        return dict.__eq__(self, other)

    def __ne__(self, other):
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = None  # a dict: unhashable

    def __reduce_ex__(self, protocol):
        """Pickled and copied as the plain dict it stands for."""
        self._fill()
        return dict, (dict(dict.items(self)),)

    def __copy__(self):
        self._fill()
        return dict.copy(self)

    def __deepcopy__(self, memo):
        self._fill()
        return dict.copy(self)  # the values are floats: nothing deeper to copy

    @classmethod
    def fromkeys(cls, iterable, value=None):
        return dict.fromkeys(iterable, value)


def _filling(name):
    method = getattr(dict, name)

    def call(self, *args, **kwargs):
        self._fill()
        return method(self, *args, **kwargs)

    call.__name__, call.__qualname__, call.__doc__ = name, f"ArrayDict.{name}", method.__doc__
    return call


for _name in (
    "__repr__",
    "__sizeof__",
    "__or__",
    "__ror__",
    "__ior__",
    "__setitem__",
    "__delitem__",
    "keys",
    "values",
    "items",
    "copy",
    "update",
    "pop",
    "popitem",
    "setdefault",
    "clear",
):
    setattr(ArrayDict, _name, _filling(_name))
