"""The statistics behind the lab's findings table: each is a function of a `Results` that returns one number, so the
bootstrap (`analysis.bootstrap`) can give it an interval.

Seed means. Most statistics read the *curves*: per (objective, model, variant, beta, epoch fraction), the mean over
seeds of win rate, sqrt(KL), length and the held-out metrics. A size's SFT row is its d = 0 point.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lit_daa.analysis.fits import Gain, LogForm, QuadraticForm, fit
from lit_daa.analysis.results import Results

CURVE = ("objective", "model", "variant", "beta", "epoch_fraction")
MEANS = (
    "win_rate",
    "sqrt_kl",
    "kl",
    "mean_length",
    "length_r2",
    "val_accuracy",
    "val_loss",
    "val_margin",
    "cut_share",
    "gold_reward",
    "gold_relevance",
    "gold_short_penalty",
    "gold_long_penalty",
)
TOP_K = 3


def rows(results: Results, variant: str = "") -> pd.DataFrame:
    """The checkpoints of the main grid (variant '') or of one variant."""
    return results.policy if variant == "" else results.variants[results.variants["variant"] == variant]


def curves(frame: pd.DataFrame) -> pd.DataFrame:
    """Seed means per (objective, model, variant, beta, epoch fraction); `seeds` counts them."""
    columns = [c for c in MEANS if c in frame.columns]
    grouped = frame.groupby(list(CURVE), sort=True)
    out = grouped[columns].mean()
    out["seeds"] = grouped.size()
    return out.reset_index()


def hump(results: Results, objective: str, model: str, variant: str = "", betas: list[float] | None = None) -> dict:
    """Peak and over-optimisation drop of one cell's seed-mean points (the SFT point at d = 0 included).

    drop: the peak win rate minus the mean of the `TOP_K` highest-KL points; interior: the peak's d lies strictly
    between the cell's lowest and highest d.
    """
    frame = rows(results, variant)
    frame = frame[(frame["objective"] == objective) & (frame["model"] == model)]
    if betas is not None:
        frame = frame[frame["beta"].isin(betas)]
    points = curves(frame)[["sqrt_kl", "win_rate"]]
    if points.empty:
        return {"drop": math.nan, "interior": False, "peak": math.nan, "peak_sqrt_kl": math.nan}
    if model in results.sft_win_rate:
        points = pd.concat([points, pd.DataFrame({"sqrt_kl": [0.0], "win_rate": [results.sft_win_rate[model]]})])
    points = points.sort_values("sqrt_kl", kind="stable").reset_index(drop=True)
    best = points.loc[points["win_rate"].idxmax()]
    top = points.iloc[1:].nlargest(TOP_K, "sqrt_kl") if len(points) > TOP_K else points.nlargest(1, "sqrt_kl")
    lo, hi = points["sqrt_kl"].min(), points["sqrt_kl"].max()
    return {
        "drop": float(best["win_rate"] - top["win_rate"].mean()),
        "interior": bool(lo < best["sqrt_kl"] < hi),
        "peak": float(best["win_rate"]),
        "peak_sqrt_kl": float(best["sqrt_kl"]),
        "max_sqrt_kl": float(hi),
    }


def rmse_ratio(results: Results, objective: str, model: str) -> float:
    """RMSE of the log form over RMSE of the quadratic form, both fitted with the gain offset (R0 = SFT win rate)
    to every checkpoint of the cell (every seed)."""
    frame = results.policy[(results.policy["objective"] == objective) & (results.policy["model"] == model)]
    r0 = results.sft_win_rate.get(model)
    if r0 is None or len(frame) < 3:
        return math.nan
    d, r = frame["sqrt_kl"].to_numpy(), frame["win_rate"].to_numpy()
    log, quad = fit(d, r, LogForm(), Gain(), r0), fit(d, r, QuadraticForm(), Gain(), r0)
    return log.rmse / quad.rmse if quad.rmse > 0 else math.nan


def intra_epoch_drop(results: Results, objective: str, model: str, beta: float, variant: str = "") -> dict:
    """One run's seed-mean curve along the epoch: the best intra-epoch checkpoint (fraction < 1) minus the end.

    drop > 0: a checkpoint inside the epoch was better than the end; kl_rise: sqrt(KL) at the end minus there.
    """
    frame = rows(results, variant)
    frame = frame[(frame["objective"] == objective) & (frame["model"] == model) & np.isclose(frame["beta"], beta)]
    curve = curves(frame).sort_values("epoch_fraction")
    inside, end = curve[curve["epoch_fraction"] < 0.999], curve[curve["epoch_fraction"] >= 0.999]
    if inside.empty or end.empty:
        return {"drop": math.nan, "best_fraction": math.nan, "kl_rise": math.nan}
    best = inside.loc[inside["win_rate"].idxmax()]
    last = end.iloc[-1]
    return {
        "drop": float(best["win_rate"] - last["win_rate"]),
        "best_fraction": float(best["epoch_fraction"]),
        "kl_rise": float(last["sqrt_kl"] - best["sqrt_kl"]),
    }


def betas_of(results: Results, objective: str, variant: str = "") -> list[float]:
    frame = rows(results, variant)
    return sorted(frame.loc[frame["objective"] == objective, "beta"].unique())


def end_kl(results: Results, objective: str, model: str, beta: float, variant: str = "") -> float:
    """Seed-mean KL of the end-of-epoch checkpoint of one run."""
    frame = rows(results, variant)
    frame = frame[(frame["objective"] == objective) & (frame["model"] == model) & np.isclose(frame["beta"], beta)]
    final = frame[frame["is_final"]]
    return float(final["kl"].mean()) if not final.empty else math.nan


def log_kl_gap(results: Results, first: str, second: str) -> float:
    """Mean over sizes and over `first`'s betas inside `second`'s beta range of log KL(first) - log KL(second) at
    the end of the epoch, `second` interpolated linearly in log beta (KL at the same constraint)."""
    gaps = []
    for model in results.models:
        mine = [(b, end_kl(results, first, model, b)) for b in betas_of(results, first)]
        theirs = [(b, end_kl(results, second, model, b)) for b in betas_of(results, second)]
        theirs = [(math.log(b), math.log(k)) for b, k in theirs if k > 0]
        if len(theirs) < 2:
            continue
        xs, ys = zip(*theirs, strict=True)
        for beta, kl in mine:
            if kl > 0 and xs[0] <= math.log(beta) <= xs[-1]:
                gaps.append(math.log(kl) - float(np.interp(math.log(beta), xs, ys)))
    return float(np.mean(gaps)) if gaps else math.nan


def mean_column(results: Results, column: str, model: str, variant: str = "") -> float:
    frame = rows(results, variant)
    return float(frame.loc[frame["model"] == model, column].mean())


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho (average ranks for ties)."""
    if len(x) < 3:
        return math.nan
    rx, ry = pd.Series(x).rank().to_numpy(), pd.Series(y).rank().to_numpy()
    return pearson(rx, ry)


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < 3 or x.std() == 0 or y.std() == 0:
        return math.nan
    return float(np.corrcoef(x, y)[0, 1])


def r2_beta_rho(results: Results, model: str) -> float:
    """Spearman's rho between beta and the seed-mean length R^2 of end-of-epoch checkpoints, over every objective."""
    frame = results.policy[(results.policy["model"] == model) & results.policy["is_final"]]
    curve = curves(frame)
    return spearman(np.log(curve["beta"].to_numpy()), curve["length_r2"].to_numpy())


def proxy_r(results: Results, model: str, column: str) -> float:
    """Pearson r, within one size, between win rate and a held-out metric over every main-grid checkpoint."""
    frame = results.policy[results.policy["model"] == model]
    return pearson(frame["win_rate"].to_numpy(), frame[column].to_numpy())


def eq7(results: Results) -> dict[str, float]:
    """Pearson r and least-squares slope of chosen_logratio on -forward_kl over every main-grid checkpoint."""
    frame = results.policy[["chosen_logratio", "forward_kl"]].dropna()
    x, y = -frame["forward_kl"].to_numpy(), frame["chosen_logratio"].to_numpy()
    if len(x) < 3:
        return {"r": math.nan, "slope": math.nan}
    slope = float(np.polyfit(x, y, 1)[0])
    return {"r": pearson(x, y), "slope": slope}


def beta_orders_kl(results: Results, objective: str, model: str, variant: str = "") -> float:
    """Spearman's rho between beta and the end-of-epoch KL of one cell (-1: a smaller beta always buys more KL)."""
    betas = betas_of(results, objective, variant)
    kls = [end_kl(results, objective, model, b, variant) for b in betas]
    return spearman(np.array(betas), np.array(kls))


__all__ = [
    "CURVE",
    "TOP_K",
    "beta_orders_kl",
    "betas_of",
    "curves",
    "end_kl",
    "eq7",
    "hump",
    "intra_epoch_drop",
    "log_kl_gap",
    "mean_column",
    "pearson",
    "proxy_r",
    "r2_beta_rho",
    "rmse_ratio",
    "rows",
    "spearman",
]
