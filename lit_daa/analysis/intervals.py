"""Seed-level intervals and the three-way reading of a claim.

Seeds are the unit of replication: every statistic is first computed once per seed (a seed redraws the preference
set, the training order and, in the lab, the SFT model), and its interval is the Student t interval of the mean of
those per-seed values, with n - 1 degrees of freedom. Contrasts between two cells are computed per seed first
(the two cells of one seed share that seed's data draw), so the pairing removes what the seed shares.

With 3 seeds a percentile bootstrap of the seed mean is about [min, max] of the seeds and covers the mean 75-87% of
the time; the t interval covers 95% for normal per-seed values at any n >= 2 (checked by simulation in
tests/test_intervals.py).

A claim is read on each of its units (a cell, a size, a contrast) as one of three `Reading`s:

- AGREES: the interval lies on the paper's side (for "no difference" claims: the 90% interval, i.e. two one-sided
  5% tests, lies inside the stated equivalence margin);
- CONTRADICTS: the interval lies on the other side, or (for a directional claim with a smallest effect of
  interest) entirely below that smallest effect, or (for "no difference") the 95% interval lies outside the margin;
- UNDECIDED: neither.

`verdict` turns the readings of a finding's units into holds / partial / fails (rule in its docstring).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np
from scipy import stats

LEVEL = 0.95
HOLDS, PARTIAL, FAILS, UNTESTED = "holds", "partial", "fails", "not measured"


@dataclass(frozen=True)
class Interval:
    """The mean of per-seed values with its t interval.

    Attributes:
        estimate: the mean over seeds.
        low, high: the interval's ends (NaN with fewer than 2 finite seeds).
        n: the number of finite per-seed values.
        level: the interval's coverage.
    """

    estimate: float
    low: float
    high: float
    n: int
    level: float = LEVEL

    @property
    def above(self) -> bool:
        """The whole interval is above 0."""
        return bool(self.low > 0)

    @property
    def below(self) -> bool:
        return bool(self.high < 0)

    @property
    def finite(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)

    def excludes(self, value: float) -> bool:
        return bool(self.low > value or self.high < value)

    def map(self, function) -> Interval:  # noqa: ANN001 - a monotone increasing float -> float function
        """The interval of a monotone increasing transform (e.g. exp of a log ratio)."""
        return Interval(function(self.estimate), function(self.low), function(self.high), self.n, self.level)

    def text(self, digits: int = 3, scale: float = 1.0) -> str:
        """'0.123 [0.101, 0.140]' (values times `scale`)."""
        if not math.isfinite(self.estimate):
            return "n/a"

        def f(x: float) -> str:
            return f"{x * scale:.{digits}g}" if math.isfinite(x) else "nan"

        return f"{f(self.estimate)} [{f(self.low)}, {f(self.high)}]"

    def row(self, prefix: str) -> dict[str, float]:
        return {prefix: self.estimate, f"{prefix}_low": self.low, f"{prefix}_high": self.high, f"{prefix}_n": self.n}


def t_interval(values: Iterable[float], level: float = LEVEL) -> Interval:
    """The mean of the finite `values` (one per seed, shape (seeds,)) and its Student t interval."""
    x = np.asarray(list(values), dtype=float)
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, level)
    mean = float(x.mean())
    if n < 2:
        return Interval(mean, math.nan, math.nan, n, level)
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return Interval(mean, mean - half, mean + half, n, level)


def paired(first: Sequence[float], second: Sequence[float], level: float = LEVEL) -> Interval:
    """The t interval of first[s] - second[s] over the seeds s both have (arrays of shape (seeds,), aligned)."""
    a, b = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    return t_interval(a - b, level)


class Reading(str, Enum):
    """What one unit of a finding says about the paper's claim."""

    AGREES = "agrees"
    UNDECIDED = "undecided"
    CONTRADICTS = "contradicts"


def directional(interval: Interval, smallest_effect: float = 0.0) -> Reading:
    """A claim that the quantity is positive: AGREES when the interval is above 0; CONTRADICTS when it is below 0
    or entirely below `smallest_effect` (no effect worth the name); UNDECIDED otherwise or without an interval."""
    if not interval.finite:
        return Reading.UNDECIDED
    if interval.low > 0:
        return Reading.AGREES
    if interval.high < 0 or (smallest_effect > 0 and interval.high < smallest_effect):
        return Reading.CONTRADICTS
    return Reading.UNDECIDED


def equivalent(values: Sequence[float], low: float, high: float) -> tuple[Reading, Interval, Interval]:
    """A claim of no difference (or of a value), with the equivalence margin [low, high]: AGREES when the 90%
    interval (two one-sided 5% tests) lies inside it, CONTRADICTS when the 95% interval lies outside it (entirely
    below `low` or above `high`). Returns the reading, the 90% and the 95% intervals."""
    narrow, wide = t_interval(values, 0.90), t_interval(values, LEVEL)
    if not narrow.finite:
        return Reading.UNDECIDED, narrow, wide
    if low <= narrow.low and narrow.high <= high:
        return Reading.AGREES, narrow, wide
    if wide.high < low or wide.low > high:
        return Reading.CONTRADICTS, narrow, wide
    return Reading.UNDECIDED, narrow, wide


def verdict(readings: Sequence[Reading]) -> str:
    """holds: every unit agrees; fails: at least half the units contradict, or none agrees; partial otherwise
    (some agree, fewer than half contradict). No units: not measured."""
    if not readings:
        return UNTESTED
    agree = sum(r == Reading.AGREES for r in readings)
    contradict = sum(r == Reading.CONTRADICTS for r in readings)
    if agree == len(readings):
        return HOLDS
    if agree == 0 or 2 * contradict >= len(readings):
        return FAILS
    return PARTIAL


def tally(readings: Sequence[Reading]) -> str:
    """'4 agree, 1 undecided, 1 contradicts' (counts of each reading present)."""
    names = {Reading.AGREES: "agree", Reading.UNDECIDED: "undecided", Reading.CONTRADICTS: "contradict"}
    parts = [f"{sum(r == reading for r in readings)} {name}" for reading, name in names.items()]
    return f"{', '.join(parts)} (of {len(readings)})"


def fisher_z(r: float) -> float:
    """atanh(r), clipped so |r| = 1 stays finite; correlations are averaged over seeds on this scale."""
    return float(np.arctanh(np.clip(r, -0.999999, 0.999999)))


__all__ = [
    "FAILS",
    "HOLDS",
    "LEVEL",
    "PARTIAL",
    "UNTESTED",
    "Interval",
    "Reading",
    "directional",
    "equivalent",
    "fisher_z",
    "paired",
    "t_interval",
    "tally",
    "verdict",
]
