"""The gradient oracle: central finite differences, with one named tolerance."""

STEP = 1e-6
TOLERANCE = 1e-5  # relative (absolute near zero) agreement expected of central differences


def numeric_grad(f, xs, i, step=STEP):
    """d f / d xs[i] by central differences; f takes a list of floats."""
    up, down = list(xs), list(xs)
    up[i] += step
    down[i] -= step
    return (f(up) - f(down)) / (2 * step)


def close(analytic, numeric, tolerance=TOLERANCE):
    return abs(analytic - numeric) <= tolerance * max(1.0, abs(analytic), abs(numeric))
