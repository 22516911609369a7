"""Every quantity the lab's findings read, defined once and computed per seed.

A *cell* is one (objective, size, variant) of the sweep: its checkpoints form a grid of (DAA beta, epoch fraction)
points, each evaluated once per seed. `Cell` holds that grid as arrays of shape (seeds, points), plus each seed's
SFT win rate (the d = 0 point of that seed's curve).

Every statistic returns a `pandas.Series` indexed by seed, so that `intervals.t_interval` gives its interval and
two cells' statistics subtract seed by seed (a contrast paired on the shared data draw).

Definitions (the report quotes them):

- hump: per seed s, the peak point and the 3 highest-KL points beyond it are chosen on the seed means of the OTHER
  seeds (leave-one-seed-out cross-fitting, so a lucky draw of seed s cannot pick its own peak: no winner's curse);
  the SFT point at d = 0 is a candidate for the peak. rise_s = W_s(peak) - SFT_s; drop_s = W_s(peak) - mean
  W_s(top 3), and 0 when no point lies beyond the peak (the curve still rises at its highest KL).
- intra-epoch drop at one beta: per seed, the best checkpoint inside the epoch (fraction < 1, chosen on the other
  seeds) minus the end-of-epoch checkpoint, both read on seed s.
- fit ratio: per seed, RMSE of the log form over RMSE of the quadratic form, both fitted to that seed's checkpoints
  of the cell as gains over that seed's SFT win rate; averaged over seeds on the log scale.
- log KL at a beta: per seed, log of the end-of-epoch KL; at a beta between grid points, linear in log beta.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lit_daa.analysis.fits import Gain, LogForm, QuadraticForm, fit
from lit_daa.analysis.results import Results

TOP_K = 3
FINAL = 0.999  # an epoch fraction at or above this is the end of the run
COLUMNS = (
    "win_rate",
    "win_rate_stderr",
    "sqrt_kl",
    "kl",
    "mean_length",
    "length_r2",
    "val_accuracy",
    "val_loss",
    "val_margin",
    "chosen_logratio",
    "forward_kl",
    "cut_share",
    "gold_reward",
    "gold_relevance",
    "gold_short_penalty",
    "gold_long_penalty",
    "ood_mass",
    "ood_token_share",
)


@dataclass(frozen=True)
class Cell:
    """One (objective, model, variant) as arrays.

    Attributes:
        seeds: shape (S,), the seeds, sorted.
        betas, fractions: shape (P,), each point's DAA beta and epoch fraction, sorted by beta then fraction.
        values: column -> array (S, P); NaN where a seed lacks the point.
        sft: shape (S,), each seed's SFT win rate (NaN without an SFT row).
    """

    objective: str
    model: str
    variant: str
    seeds: np.ndarray
    betas: np.ndarray
    fractions: np.ndarray
    values: dict[str, np.ndarray]
    sft: np.ndarray

    def __getitem__(self, column: str) -> np.ndarray:
        return self.values.get(column, np.full((len(self.seeds), len(self.betas)), np.nan))

    def series(self, values: Sequence[float]) -> pd.Series:
        return pd.Series(np.asarray(values, dtype=float), index=self.seeds)

    def only(self, betas: Sequence[float] | None) -> Cell:
        """The cell restricted to the points whose beta is in `betas` (None: all)."""
        if betas is None:
            return self
        keep = np.isin(np.round(self.betas, 9), np.round(np.asarray(betas, dtype=float), 9))
        return Cell(
            self.objective,
            self.model,
            self.variant,
            self.seeds,
            self.betas[keep],
            self.fractions[keep],
            {k: v[:, keep] for k, v in self.values.items()},
            self.sft,
        )

    @property
    def beta_grid(self) -> list[float]:
        return sorted(set(self.betas.tolist()))

    @property
    def empty(self) -> bool:
        return len(self.seeds) == 0 or len(self.betas) == 0


def rows(results: Results, variant: str = "") -> pd.DataFrame:
    """The checkpoints of the main grid (variant '') or of one variant."""
    return results.policy if variant == "" else results.variants[results.variants["variant"] == variant]


_CELLS: dict[tuple, tuple[object, Cell]] = {}


def cell(results: Results, objective: str, model: str, variant: str = "") -> Cell:
    """The arrays of one cell (computed once per table and cell)."""
    key = (id(results.policy), id(results.variants), objective, model, variant)
    hit = _CELLS.get(key)
    if hit is not None and hit[0] is results:
        return hit[1]
    frame = rows(results, variant)
    frame = frame[(frame["objective"] == objective) & (frame["model"] == model)]
    built = _build(results, frame, objective, model, variant)
    if len(_CELLS) > 512:
        _CELLS.clear()
    _CELLS[key] = (results, built)
    return built


def _build(results: Results, frame: pd.DataFrame, objective: str, model: str, variant: str) -> Cell:
    frame = frame.assign(epoch_fraction=frame["epoch_fraction"].round(3))
    seeds = np.array(sorted(frame["seed"].unique()), dtype=int)
    points = frame[["beta", "epoch_fraction"]].drop_duplicates().sort_values(["beta", "epoch_fraction"])
    betas, fractions = points["beta"].to_numpy(float), points["epoch_fraction"].to_numpy(float)
    index = pd.MultiIndex.from_arrays([betas, fractions])
    values = {}
    for column in COLUMNS:
        if column not in frame.columns:
            continue
        table = frame.pivot_table(index="seed", columns=["beta", "epoch_fraction"], values=column, aggfunc="mean")
        values[column] = table.reindex(index=seeds, columns=index).to_numpy(float)
    return Cell(objective, model, variant, seeds, betas, fractions, values, sft_of(results, model, seeds))


def sft_of(results: Results, model: str, seeds: np.ndarray) -> np.ndarray:
    """Each seed's SFT win rate: the SFT row of that seed where the sweep trained one per seed, else the size's one
    SFT row for every seed (NaN without any)."""
    by_seed = results.sft_by_seed.get(model)
    if by_seed is None or by_seed.empty:
        return np.full(len(seeds), np.nan)
    if len(by_seed) == 1:
        return np.full(len(seeds), float(by_seed.iloc[0]))
    return by_seed.reindex(seeds).to_numpy(float)


def cells(results: Results, variant: str = "") -> list[Cell]:
    """Every (objective, model) cell of the main grid (or of one variant), objectives then sizes smallest first."""
    frame = rows(results, variant)
    present = set(zip(frame["objective"], frame["model"], strict=True))
    objectives = sorted(frame["objective"].unique())
    return [cell(results, o, m, variant) for o in objectives for m in results.models if (o, m) in present]


# -- seed means and cross-fitting ------------------------------------------------------------------------------------
def _others_mean(x: np.ndarray, s: int) -> np.ndarray:
    """Mean over every seed but row s of an (S, P) array (NaN-aware); shape (P,)."""
    others = np.delete(x, s, axis=0)
    with _quiet():
        return np.nanmean(others, axis=0)


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence numpy's 'mean of empty slice': an all-NaN column is a point no other seed has, and NaN is right."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def hump(c: Cell) -> pd.DataFrame:
    """Per seed (index): cross-fitted `rise` (peak minus SFT) and `drop` (peak minus the 3 highest-KL points beyond
    it; 0 when none lies beyond), the
    chosen peak's sqrt(KL) `peak_sqrt_kl` (NaN when the peak is the SFT point) and whether the peak is the SFT
    point (`peak_is_sft`). Needs 2+ seeds (one seed: NaN)."""
    w, d = c["win_rate"], c["sqrt_kl"]
    out = []
    for s in range(len(c.seeds)):
        if len(c.seeds) < 2:
            out.append((math.nan, math.nan, math.nan, False))
            continue
        wm, dm = _others_mean(w, s), _others_mean(d, s)
        sft_other = np.nanmean(np.delete(c.sft, s)) if np.isfinite(np.delete(c.sft, s)).any() else math.nan
        usable = np.isfinite(wm) & np.isfinite(dm) & np.isfinite(w[s])
        if usable.sum() < 1:
            out.append((math.nan, math.nan, math.nan, False))
            continue
        idx = np.flatnonzero(usable)
        best = idx[int(np.argmax(wm[idx]))]
        is_sft = math.isfinite(sft_other) and sft_other >= wm[best]
        peak_value = c.sft[s] if is_sft else w[s, best]
        # the top points lie beyond the peak: a curve still rising at its highest KL has none, and no drop
        beyond = idx[dm[idx] > (0.0 if is_sft else dm[best])]
        top = beyond[np.argsort(-dm[beyond], kind="stable")[:TOP_K]]
        drop = peak_value - float(w[s, top].mean()) if top.size else 0.0
        out.append((peak_value - c.sft[s], drop, math.nan if is_sft else dm[best], is_sft))
    frame = pd.DataFrame(out, columns=["rise", "drop", "peak_sqrt_kl", "peak_is_sft"], index=c.seeds)
    return frame


def describe(c: Cell) -> dict:
    """The seed-mean curve of a cell: its peak (SFT point included), the peak's d, the largest d, and whether the
    peak lies strictly inside the d range. A description for tables and figures; the tests use `hump`."""
    with _quiet():
        wm, dm = np.nanmean(c["win_rate"], axis=0), np.nanmean(c["sqrt_kl"], axis=0)
        sft = float(np.nanmean(c.sft)) if np.isfinite(c.sft).any() else math.nan
    keep = np.isfinite(wm) & np.isfinite(dm)
    if not keep.any():
        return {"peak": math.nan, "peak_sqrt_kl": math.nan, "max_sqrt_kl": math.nan, "interior": False}
    wm, dm, betas, fractions = wm[keep], dm[keep], c.betas[keep], c.fractions[keep]
    best = int(np.argmax(wm))
    if math.isfinite(sft) and sft >= wm[best]:
        return {
            "peak": sft,
            "peak_sqrt_kl": 0.0,
            "max_sqrt_kl": float(dm.max()),
            "interior": False,
            "peak_beta": math.nan,
            "peak_fraction": 0.0,
            "sft": sft,
        }
    return {
        "peak": float(wm[best]),
        "peak_sqrt_kl": float(dm[best]),
        "max_sqrt_kl": float(dm.max()),
        "interior": bool(dm[best] < dm.max()),
        "peak_beta": float(betas[best]),
        "peak_fraction": float(fractions[best]),
        "sft": sft,
    }


def crossfit_best(w: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Per seed s of an (S, P) array: the column among `candidates` (indices into P) with the highest mean over the
    OTHER seeds, so seed s is read at a point it did not choose; -1 where no candidate has a finite mean or S < 2.
    Shape (S,)."""
    best = np.full(w.shape[0], -1, dtype=int)
    if w.shape[0] < 2:
        return best
    for s in range(w.shape[0]):
        wm = _others_mean(w, s)
        finite = candidates[np.isfinite(wm[candidates])]
        if finite.size:
            best[s] = finite[int(np.argmax(wm[finite]))]
    return best


def _read_minus(w: np.ndarray, best: np.ndarray, end: int) -> np.ndarray:
    """Per seed: w[s, best[s]] - w[s, end], NaN where `best` is -1; shape (S,)."""
    rows = np.arange(w.shape[0])
    return np.where(best >= 0, w[rows, np.maximum(best, 0)] - w[:, end], np.nan)


def intra_epoch(c: Cell, beta: float) -> pd.DataFrame:
    """At one beta, per seed: `drop` = the cross-fitted best checkpoint inside the epoch minus the end of the epoch,
    and `best_fraction`, the epoch fraction chosen (on the other seeds)."""
    run = np.isclose(c.betas, beta)
    fractions = c.fractions[run]
    w = c["win_rate"][:, run]
    inside, end = np.flatnonzero(fractions < FINAL), np.flatnonzero(fractions >= FINAL)
    if inside.size == 0 or end.size == 0:
        return pd.DataFrame({"drop": np.nan, "best_fraction": np.nan}, index=c.seeds)
    best = crossfit_best(w, inside)
    chosen = np.where(best >= 0, fractions[np.maximum(best, 0)], np.nan)
    return pd.DataFrame({"drop": _read_minus(w, best, end[-1]), "best_fraction": chosen}, index=c.seeds)


def best_of_n_drop(proxy: pd.DataFrame) -> pd.Series:
    """Per seed of one size's best-of-n curve (rows: seed, n, win_rate): the win rate at the n chosen on the other
    seeds' mean curve, minus the win rate at the largest n."""
    table = proxy.pivot_table(index="seed", columns="n", values="win_rate", aggfunc="mean").sort_index(axis=1)
    w = table.to_numpy(float)
    best = crossfit_best(w, np.arange(w.shape[1]))
    return pd.Series(_read_minus(w, best, w.shape[1] - 1), index=table.index, dtype=float)


def fit_ratio(c: Cell) -> pd.Series:
    """Per seed: log(RMSE of the log form / RMSE of the quadratic form), gain offset over that seed's SFT win rate,
    fitted to that seed's checkpoints of the cell (NaN without an SFT row or with under 3 points)."""
    d, w = c["sqrt_kl"], c["win_rate"]
    out = []
    for s in range(len(c.seeds)):
        keep = np.isfinite(d[s]) & np.isfinite(w[s])
        r0 = float(c.sft[s])
        if keep.sum() < 3 or not math.isfinite(r0):
            out.append(math.nan)
            continue
        log = fit(d[s, keep], w[s, keep], LogForm(), Gain(), r0)
        quad = fit(d[s, keep], w[s, keep], QuadraticForm(), Gain(), r0)
        out.append(math.log(log.rmse / quad.rmse) if log.rmse > 0 and quad.rmse > 0 else math.nan)
    return c.series(out)


def end_log_kl(c: Cell, beta: float) -> pd.Series:
    """Per seed: log KL at the end of the epoch at DAA `beta`, linear in log beta between the cell's betas (NaN
    outside them)."""
    final = c.fractions >= FINAL
    betas, kl = c.betas[final], c["kl"][:, final]
    order = np.argsort(betas)
    betas, kl = betas[order], kl[:, order]
    out = []
    for s in range(len(c.seeds)):
        keep = np.isfinite(kl[s]) & (kl[s] > 0)
        xs, ys = np.log(betas[keep]), np.log(kl[s, keep])
        if xs.size == 0 or not xs[0] - 1e-9 <= math.log(beta) <= xs[-1] + 1e-9:
            out.append(math.nan)
            continue
        out.append(float(np.interp(math.log(beta), xs, ys)))
    return c.series(out)


def common_beta_log_kl_gap(first: Cell, second: Cell) -> pd.Series:
    """Per seed: mean over `first`'s betas inside `second`'s beta range of log KL(first) - log KL(second) at the end
    of the epoch (KL at the same constraint)."""
    lo, hi = min(second.beta_grid), max(second.beta_grid)
    gaps = [end_log_kl(first, b) - end_log_kl(second, b) for b in first.beta_grid if lo <= b <= hi]
    if not gaps:
        return pd.Series(dtype=float)
    return pd.concat(gaps, axis=1).mean(axis=1)


def column_mean(c: Cell, column: str) -> pd.Series:
    """Per seed: the mean of `column` over the cell's points."""
    with _quiet():
        return c.series(np.nanmean(c[column], axis=1))


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho (average ranks for ties); NaN under 3 finite pairs or without spread."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y)
    if keep.sum() < 3:
        return math.nan
    return pearson(pd.Series(x[keep]).rank().to_numpy(), pd.Series(y[keep]).rank().to_numpy())


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < 3 or x.std() == 0 or y.std() == 0:
        return math.nan
    return float(np.corrcoef(x, y)[0, 1])


def beta_rho(c: Cell, column: str) -> pd.Series:
    """Per seed: Spearman's rho between log beta and `column` at the end of the epoch, over the cell's betas."""
    final = c.fractions >= FINAL
    x = np.log(c.betas[final])
    return c.series([spearman(x, c[column][s, final]) for s in range(len(c.seeds))])


def within_r(c: Cell, column: str) -> pd.Series:
    """Per seed: Pearson r between win rate and `column` over the seed's checkpoints of the cell."""
    return c.series([pearson(c["win_rate"][s], c[column][s]) for s in range(len(c.seeds))])


def eq7_slopes(results: Results) -> pd.Series:
    """Per seed: the least-squares slope of chosen_logratio on -forward_kl over every main-grid checkpoint of that
    seed (Eq. 7 says 1)."""
    frame = results.policy[["seed", "chosen_logratio", "forward_kl"]].dropna()
    out = {}
    for seed, group in frame.groupby("seed"):
        x, y = -group["forward_kl"].to_numpy(float), group["chosen_logratio"].to_numpy(float)
        out[seed] = float(np.polyfit(x, y, 1)[0]) if len(x) >= 3 and x.std() > 0 else math.nan
    return pd.Series(out, dtype=float)


def pooled(cells_: Sequence[Cell], function) -> pd.Series:  # noqa: ANN001 - Cell -> per-seed Series
    """Per seed: the mean of a per-seed statistic over several cells (e.g. over the objectives of a size)."""
    parts = [function(c) for c in cells_]
    parts = [p for p in parts if not p.empty]
    return pd.concat(parts, axis=1).mean(axis=1) if parts else pd.Series(dtype=float)


def beta_orders_kl(c: Cell) -> float:
    """Spearman's rho between beta and the seed-mean end-of-epoch KL (-1: a smaller beta always bought more KL)."""
    final = c.fractions >= FINAL
    with _quiet():
        return spearman(c.betas[final], np.nanmean(c["kl"][:, final], axis=0))


__all__ = [
    "COLUMNS",
    "FINAL",
    "TOP_K",
    "Cell",
    "beta_orders_kl",
    "best_of_n_drop",
    "beta_rho",
    "cell",
    "cells",
    "column_mean",
    "common_beta_log_kl_gap",
    "crossfit_best",
    "describe",
    "end_log_kl",
    "eq7_slopes",
    "fit_ratio",
    "hump",
    "intra_epoch",
    "pearson",
    "pooled",
    "rows",
    "sft_of",
    "spearman",
    "within_r",
]
