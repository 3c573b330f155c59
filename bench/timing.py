"""Time-boxed repetition: the best of several runs is the least noisy figure here."""

import time


def best_of(fn, repeat=5, budget=10.0):
    """The fastest of up to `repeat` calls of fn(), stopping early once `budget` s are spent."""
    best, spent = float("inf"), 0.0
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - started
        best, spent = min(best, elapsed), spent + elapsed
        if spent > budget:
            break
    return best


def per_call(fn, min_time=0.5):
    """Seconds per call of a fast fn(), averaged over enough calls to fill min_time."""
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < min_time:
        fn()
        calls += 1
    return (time.perf_counter() - started) / calls


def round_robin(runs, rounds, warm_up=True):
    """{name: [figures of each round]}: `rounds` rounds that each call every run once, in
    turn, so that a busy moment of the machine falls on all of them alike. A run returns a
    tuple of figures (e.g. seconds for the whole call, seconds to its first step; None for
    one it does not have). `warm_up` calls each run once first, untimed (lazy imports,
    caches, a first pass)."""
    if warm_up:
        for run in runs.values():
            run()
    samples = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            samples[name].append(tuple(run()))
    return samples


def fastest(samples):
    """The least of each figure over a run's rounds (None where the run has none)."""
    columns = zip(*samples, strict=True)
    return tuple(min((x for x in c if x is not None), default=None) for c in columns)


def median_and_range(values):
    """(median, least, most) of some figures, e.g. one ratio per round."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    median = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    return median, ordered[0], ordered[-1]
