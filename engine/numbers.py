"""Which user-given values are numbers: the one check that graphs, specs and predict share,
and its form for many values at once (a training set's rows), in a few passes in C."""

from itertools import chain

import numpy as np

_NUMBER_TYPES = {int, float}  # bool is a type of its own: never a number here


def finite_float(v):
    """v as a float if it is a finite number (bools are not numbers), else None."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    try:
        v = float(v)
    except OverflowError:  # an integer of hundreds of digits: JSON can carry one
        return None
    return v if v - v == 0.0 else None


def finite_rows(rows, width):
    """[[finite_float(v) for v in row] for row in rows] when each row is a list of `width`
    finite numbers; None when any is not (the caller words which, value by value)."""
    if {*map(type, rows)} != {list} or {*map(len, rows)} != {width}:
        return None
    array = finite_array(list(chain.from_iterable(rows)))
    return None if array is None else array.reshape(len(rows), width).tolist()


def finite_array(values):
    """The values as a float64 array when each is a finite number, else None."""
    if not {*map(type, values)} <= _NUMBER_TYPES:
        return None
    try:
        array = np.array(values, dtype=float)  # each as float(v) makes it
    except OverflowError:  # an integer beyond floats
        return None
    return array if np.isfinite(array).all() else None
