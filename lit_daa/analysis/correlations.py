"""Correlations: do held-out accuracy and loss predict win rate (PAPER.md Fig. 4), and the Eq. 7 check.

Pearson and Spearman coefficients are exact. Their p-values use the Fisher z approximation (normal, standard
error 1/sqrt(n - 3), times sqrt(1.06) for Spearman as in Fieller et al. 1957), so the module needs no SciPy; they
are rough for n below about 10 and NaN for n < 4.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Correlation:
    """Pearson and Spearman correlation of two samples, with approximate two-sided p-values."""

    n: int
    pearson_r: float
    pearson_p: float
    spearman_rho: float
    spearman_p: float


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson r; NaN when either sample is constant (the coefficient is undefined there)."""
    if len(x) < 2:
        return math.nan
    dx, dy = x - x.mean(), y - y.mean()
    denom = math.sqrt(float(dx @ dx) * float(dy @ dy))
    return float(dx @ dy) / denom if denom > 0 else math.nan


def _fisher_p(r: float, n: int, variance_factor: float = 1.0) -> float:
    """Two-sided p-value of r under no correlation, from Fisher's z = atanh(r) ~ N(0, factor / (n - 3))."""
    if n < 4 or not math.isfinite(r):
        return math.nan
    z = math.atanh(min(abs(r), 1.0 - 1e-15)) * math.sqrt((n - 3) / variance_factor)
    return math.erfc(z / math.sqrt(2.0))


def correlate(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> Correlation:
    """Correlation of the pairs where both x and y are finite."""
    x_arr, y_arr = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x_arr) & np.isfinite(y_arr)
    x_arr, y_arr = x_arr[keep], y_arr[keep]
    n = int(keep.sum())
    r = _pearson(x_arr, y_arr)
    # Spearman = Pearson of the ranks, ties sharing their average rank.
    rho = _pearson(pd.Series(x_arr).rank().to_numpy(), pd.Series(y_arr).rank().to_numpy())
    return Correlation(n, r, _fisher_p(r, n), rho, _fisher_p(rho, n, variance_factor=1.06))


def correlation_table(
    df: pd.DataFrame,
    x_cols: Sequence[str],
    y_col: str = "win_rate",
    group_cols: Sequence[str] = ("model",),
) -> pd.DataFrame:
    """One row per (group, x column): the correlation of `y_col` with that column inside the group.

    Columns missing from `df` are skipped, so a table without val_loss still gets its accuracy rows.
    """
    rows = []
    present = [col for col in x_cols if col in df.columns]
    groups = df.groupby(list(group_cols), sort=False) if group_cols else [((), df)]
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        for col in present:
            corr = correlate(group[col], group[y_col])
            rows.append({**dict(zip(group_cols, key, strict=True)), "x": col, "y": y_col, **asdict(corr)})
    return pd.DataFrame(rows, columns=[*group_cols, "x", "y", *Correlation.__dataclass_fields__])


def eq7_summary(policy: pd.DataFrame) -> dict[str, float]:
    """How close the chosen responses' mean log-ratio is to -KL(pi_ref || pi) (PAPER.md Eq. 7).

    Returns n, the correlation of chosen_logratio with -forward_kl, the least-squares slope and intercept of
    chosen_logratio on -forward_kl (1 and 0 when Eq. 7 holds exactly), and the mean and mean absolute gap
    chosen_logratio - (-forward_kl).
    """
    x = -policy["forward_kl"].to_numpy(dtype=float)
    y = policy["chosen_logratio"].to_numpy(dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    corr = correlate(x, y)
    slope = intercept = math.nan
    if len(x) >= 2 and np.ptp(x) > 0:
        slope, intercept = (float(v) for v in np.polyfit(x, y, 1))
    gap = y - x
    return {
        "n": corr.n,
        "pearson_r": corr.pearson_r,
        "spearman_rho": corr.spearman_rho,
        "slope": slope,
        "intercept": intercept,
        "mean_gap": float(gap.mean()) if len(gap) else math.nan,
        "mean_abs_gap": float(np.abs(gap).mean()) if len(gap) else math.nan,
    }


__all__ = ["Correlation", "correlate", "correlation_table", "eq7_summary"]
