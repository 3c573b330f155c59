"""One format for every figure a bench prints: the figure, its value, the baseline measured
in the same run, their ratio, and the target, when there is one, with whether it was met.

    figure                       value     baseline                ratio   target
    POST /v1/graphs, requests/s  1012/s    1630/s (bare Flask)     0.62    >= 0.60 met
"""

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    baseline: float
    baseline_name: str
    higher_is_better: bool = False
    """Rates are better higher (the target is a least ratio); times lower (a most)."""
    target: float | None = None
    """The ratio value / baseline to reach: at least it for rates, at most it for times."""

    @property
    def ratio(self) -> float:
        return self.value / self.baseline if self.baseline else float("nan")

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        return self.ratio >= self.target if self.higher_is_better else self.ratio <= self.target

    def target_text(self) -> str:
        if self.target is None:
            return ""
        sign = ">=" if self.higher_is_better else "<="
        return f"{sign} {self.target:.2f} {'met' if self.met else 'MISSED'}"


def number(value: float, unit: str) -> str:
    if unit == "s":  # times: the unit that keeps 3-4 significant digits
        for scale, name in ((1, "s"), (1e-3, "ms"), (1e-6, "us")):
            if abs(value) >= scale or name == "us":
                return (
                    f"{value / scale:.3g} {name}"
                    if value / scale < 100
                    else f"{value / scale:.0f} {name}"
                )
    return f"{value:.0f}{unit}"


def print_figures(figures: Sequence[Figure], unit: str = "s") -> None:
    """The figures as a table (every topic prints this one, so runs compare at a glance)."""
    width = max(len(f.name) for f in figures) + 2
    base_width = max(len(f"baseline ({f.baseline_name})") for f in figures) + 2
    print(f"  {'figure':<{width}}{'value':<12}{'baseline':<{base_width}}{'ratio':<8}target")
    for f in figures:
        baseline = f"{number(f.baseline, unit)} ({f.baseline_name})"
        print(
            f"  {f.name:<{width}}{number(f.value, unit):<12}{baseline:<{base_width}}"
            f"{f.ratio:<8.2f}{f.target_text()}".rstrip(),
            flush=True,
        )
