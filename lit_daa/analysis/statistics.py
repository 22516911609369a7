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


_CACHE: dict[int, tuple[pd.DataFrame, pd.DataFrame]] = {}


def cell_arrays(results: Results, objective: str, model: str, variant: str = "") -> dict[str, np.ndarray]:
    """One cell's seed-mean curve points as numpy arrays by column (beta, epoch_fraction, win_rate, sqrt_kl, ...),
    from `cached_curves` split once per table: the statistics below run hundreds of times per bootstrap."""
    table = cached_curves(results, "" if variant == "" else None)
    key = ("cells", id(table))
    hit = _CACHE.get(key)  # type: ignore[arg-type]
    if hit is None or hit[0] is not table:
        split = {
            (o, m, v): {c: g[c].to_numpy() for c in g.columns if c not in ("objective", "model", "variant")}
            for (o, m, v), g in table.groupby(["objective", "model", "variant"], sort=False)
        }
        hit = (table, split)
        _CACHE[key] = hit  # type: ignore[index]
    empty = {c: np.zeros(0) for c in ("beta", "epoch_fraction", "win_rate", "sqrt_kl", "kl")}
    return hit[1].get((objective, model, variant), empty)


def cached_curves(results: Results, variant: str | None = "") -> pd.DataFrame:
    """`curves` of the main grid's (or the variants') rows, computed once per table: every statistic of a bootstrap
    replicate reads the same seed means. Keyed by the frame's identity; the frame is kept alive with its curves."""
    frame = results.policy if variant == "" else results.variants
    hit = _CACHE.get(id(frame))
    if hit is None or hit[0] is not frame:
        if len(_CACHE) > 4096:
            _CACHE.clear()
        hit = (frame, curves(frame) if not frame.empty else pd.DataFrame(columns=[*CURVE, *MEANS]))
        _CACHE[id(frame)] = hit
    table = hit[1]
    return table if variant in ("", None) else table[table["variant"] == variant]


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
    cell = cell_arrays(results, objective, model, variant)
    keep = np.isin(cell["beta"], betas) if betas is not None else np.ones(len(cell["beta"]), dtype=bool)
    d, w = cell["sqrt_kl"][keep], cell["win_rate"][keep]
    if d.size == 0:
        return {
            "drop": math.nan,
            "interior": False,
            "peak": math.nan,
            "peak_sqrt_kl": math.nan,
            "max_sqrt_kl": math.nan,
        }
    top = np.argsort(-d, kind="stable")[: min(TOP_K, d.size)]
    top_mean = float(w[top].mean())
    if model in results.sft_win_rate:
        d, w = np.append(d, 0.0), np.append(w, results.sft_win_rate[model])
    order = np.argsort(d, kind="stable")
    d, w = d[order], w[order]
    best = int(np.argmax(w))
    return {
        "drop": float(w[best] - top_mean),
        "interior": bool(d.min() < d[best] < d.max()),
        "peak": float(w[best]),
        "peak_sqrt_kl": float(d[best]),
        "max_sqrt_kl": float(d.max()),
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
    cell = cell_arrays(results, objective, model, variant)
    run = np.isclose(cell["beta"], beta)
    fraction, w, d = cell["epoch_fraction"][run], cell["win_rate"][run], cell["sqrt_kl"][run]
    inside, end = fraction < 0.999, fraction >= 0.999
    if not inside.any() or not end.any():
        return {"drop": math.nan, "best_fraction": math.nan, "kl_rise": math.nan}
    best = np.flatnonzero(inside)[int(np.argmax(w[inside]))]
    last = np.flatnonzero(end)[-1]
    return {
        "drop": float(w[best] - w[last]),
        "best_fraction": float(fraction[best]),
        "kl_rise": float(d[last] - d[best]),
    }


def betas_of(results: Results, objective: str, variant: str = "") -> list[float]:
    frame = rows(results, variant)
    return sorted(frame.loc[frame["objective"] == objective, "beta"].unique())


def end_kl(results: Results, objective: str, model: str, beta: float, variant: str = "") -> float:
    """Seed-mean KL of the end-of-epoch checkpoint of one run."""
    cell = cell_arrays(results, objective, model, variant)
    final = np.isclose(cell["beta"], beta) & (cell["epoch_fraction"] >= 0.999)
    return float(cell["kl"][final].mean()) if final.any() else math.nan


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
    table = cached_curves(results)
    curve = table[(table["model"] == model) & (table["epoch_fraction"] >= 0.999)]
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
