"""Which user-given values are numbers: the one check that graphs, specs and predict share."""


def finite_float(v):
    """v as a float if it is a finite number (bools are not numbers), else None."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    try:
        v = float(v)
    except OverflowError:  # an integer of hundreds of digits: JSON can carry one
        return None
    return v if v - v == 0.0 else None
