"""Confidence intervals for statistics of a results table, by a two-level bootstrap.

One replicate of the table:

1. within every run group (objective, model, variant), the seeds are drawn with replacement (as many as the group
   has), and every checkpoint of a drawn seed comes along, so a replicate keeps each run's whole trajectory and
   the seed's shared data draw across betas;
2. every checkpoint's win rate (and each SFT row's) is moved by Gaussian noise with its binomial standard error,
   so judging noise counts even where a cell has one seed. Seed-to-seed spread already holds some judging noise,
   so the intervals are on the conservative side.

A statistic is any function of a `Results` returning a float (NaN when undefined); its interval is the percentile
interval of its values over the replicates, around its value on the table itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from lit_daa.analysis.results import Results

GROUP = ("objective", "model", "variant")
Statistic = Callable[[Results], float]


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap percentile interval (`level`, default 95%); `share` is the fraction of
    finite replicates, and `values` the replicates themselves."""

    estimate: float
    low: float
    high: float
    level: float = 0.95
    share: float = 1.0

    @property
    def above(self) -> bool:
        """The whole interval is above 0."""
        return bool(self.low > 0)

    @property
    def below(self) -> bool:
        return bool(self.high < 0)

    def excludes(self, value: float) -> bool:
        return bool(self.low > value or self.high < value)

    def text(self, digits: int = 3, scale: float = 1.0) -> str:
        """'0.123 [0.101, 0.140]' (values times `scale`)."""
        if not math.isfinite(self.estimate):
            return "n/a"

        def f(x: float) -> str:
            return f"{x * scale:.{digits}g}" if math.isfinite(x) else "nan"

        return f"{f(self.estimate)} [{f(self.low)}, {f(self.high)}]"

    def row(self, prefix: str) -> dict[str, float]:
        return {prefix: self.estimate, f"{prefix}_low": self.low, f"{prefix}_high": self.high}


class Bootstrap:
    """Replicates of a `Results` (see the module docstring), drawn once and shared by every statistic.

    Args:
        results: the table.
        replicates: how many replicates.
        seed: the bootstrap's own random seed (the intervals are reproducible).
        level: the interval's coverage.
    """

    def __init__(self, results: Results, replicates: int = 400, seed: int = 0, level: float = 0.95) -> None:
        self.results, self.level = results, level
        rng = np.random.default_rng(seed)
        self.replicas = [self._draw(rng) for _ in range(replicates)]

    def _draw(self, rng: np.random.Generator) -> Results:
        results = self.results
        reference = _jitter(results.reference, rng)
        return replace(
            results,
            policy=_resample(results.policy, rng),
            variants=_resample(results.variants, rng),
            reference=reference,
            sft_win_rate=dict(zip(reference["model"], reference["win_rate"].astype(float), strict=True)),
        )

    def interval(self, statistic: Statistic) -> Interval:
        """The statistic on the table and its percentile interval over the replicates."""
        estimate = _safe(statistic, self.results)
        values = np.array([_safe(statistic, r) for r in self.replicas], dtype=float)
        finite = values[np.isfinite(values)]
        if finite.size == 0 or not math.isfinite(estimate):
            return Interval(estimate, math.nan, math.nan, self.level, finite.size / max(len(values), 1))
        tail = 100 * (1 - self.level) / 2
        low, high = np.percentile(finite, [tail, 100 - tail])
        return Interval(estimate, float(low), float(high), self.level, finite.size / len(values))

    def share(self, predicate: Callable[[Results], bool]) -> float:
        """The fraction of replicates where `predicate` holds (e.g. the peak is interior)."""
        return float(np.mean([bool(_safe(predicate, r)) for r in self.replicas]))


def _safe(statistic: Callable[[Results], float], results: Results) -> float:
    try:
        return float(statistic(results))
    except (ValueError, KeyError, IndexError, ZeroDivisionError, np.linalg.LinAlgError):
        return math.nan


def _resample(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Seeds drawn with replacement within each run group, renumbered so a seed drawn twice stays two seeds."""
    if frame.empty:
        return frame
    parts = []
    for _, group in frame.groupby(list(GROUP), sort=False):
        seeds = group["seed"].unique()
        drawn = rng.choice(seeds, size=len(seeds), replace=True)
        for new, seed in enumerate(drawn):
            parts.append(group[group["seed"] == seed].assign(seed=new))
    return _jitter(pd.concat(parts, ignore_index=True), rng)


def _jitter(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Each win rate moved by N(0, its standard error), kept in [0, 1]."""
    if frame.empty or "win_rate_stderr" not in frame.columns:
        return frame
    noise = rng.standard_normal(len(frame)) * frame["win_rate_stderr"].fillna(0.0).to_numpy()
    return frame.assign(win_rate=np.clip(frame["win_rate"].to_numpy() + noise, 0.0, 1.0))


__all__ = ["GROUP", "Bootstrap", "Interval", "Statistic"]
