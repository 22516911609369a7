"""The lab's figures: seed means with 95% error bars, the fitted log form, classic RLHF (best-of-n) beside the DAAs,
proxies next to gold, controls, the R-DPO ablation and the gold-reward breakdown. Each function returns False (and
writes nothing) when the table lacks what it needs.

Error bars: the 95% Student t interval of the seed mean (n - 1 degrees of freedom, as in the findings); with a single
seed, 1.96 binomial standard errors of that one evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy import stats

from lit_daa.analysis.fits import Gain, LogForm, QuadraticForm, fit
from lit_daa.analysis.results import Results
from lit_daa.analysis.statistics import rows

CURVE = ("objective", "model", "variant", "beta", "epoch_fraction")
DEFAULT_DPI = 120
PANEL = (4.2, 3.4)  # inches per panel
Z95 = 1.96


def _figure(rows_: int, cols: int, sharex: bool | str = False, sharey: bool | str = False) -> tuple[Figure, np.ndarray]:
    """A figure on an Agg canvas with a (rows, cols) array of axes."""
    fig = Figure(figsize=(PANEL[0] * cols, PANEL[1] * rows_), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(rows_, cols, sharex=sharex, sharey=sharey, squeeze=False)


def size_colours(models: Sequence[str]) -> dict[str, tuple[float, float, float, float]]:
    """One colour per model size, light-to-dark along viridis from the smallest to the largest."""
    cmap = matplotlib.colormaps["viridis"]
    spots = np.linspace(0.1, 0.85, len(models)) if len(models) > 1 else [0.45]
    return {model: cmap(spot) for model, spot in zip(models, spots, strict=True)}


def objective_colours(objectives: Sequence[str]) -> dict[str, tuple[float, float, float, float]]:
    """One qualitative colour per objective."""
    cmap = matplotlib.colormaps["tab10"]
    return {objective: cmap(i % 10) for i, objective in enumerate(objectives)}


def seed_summary(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per curve point: mean of `column` over seeds, its 95% half-width `err`, and the mean sqrt(KL) with `xerr`."""
    grouped = frame.groupby(list(CURVE), sort=True)
    out = grouped[[column, "sqrt_kl"]].mean()
    n = grouped.size()
    t = pd.Series(np.where(n > 1, stats.t.ppf(0.975, np.maximum(n - 1, 1)), np.nan), index=n.index)
    err = t * np.sqrt(grouped[column].var(ddof=1) / n)
    if column == "win_rate" and "win_rate_stderr" in frame.columns:
        single = Z95 * grouped["win_rate_stderr"].mean()
        err = err.where(n > 1, single)
    out["err"] = err.fillna(0.0)
    out["xerr"] = (t * np.sqrt(grouped["sqrt_kl"].var(ddof=1) / n)).fillna(0.0)
    return out.reset_index()


def _points(ax: Axes, summary: pd.DataFrame, column: str, colour: object, label: str | None, marker: str = "o") -> None:
    ax.errorbar(
        summary["sqrt_kl"],
        summary[column],
        yerr=summary["err"],
        xerr=summary["xerr"],
        fmt=marker,
        ms=3.5,
        color=colour,
        ecolor=colour,
        elinewidth=0.7,
        alpha=0.85,
        label=label,
    )


def _sft(ax: Axes, results: Results, model: str, colour: object) -> None:
    if model in results.sft_win_rate:
        ax.scatter([0.0], [results.sft_win_rate[model]], marker="*", s=90, color=[colour], zorder=5)


def _save(fig, path: Path, dpi: int) -> bool:  # noqa: ANN001 - a matplotlib Figure
    fig.savefig(path, dpi=dpi)
    return True


def fig_lab_winrate(results: Results, path: Path, dpi: int = 120) -> bool:
    """Win rate vs sqrt(KL), a panel per objective, a colour per size: seed means with 95% error bars, every
    checkpoint of the epoch, the SFT model as a star at d = 0, and the log form R0 + d(a - b log d) fitted to every
    checkpoint of the cell (the fit-form finding's per-seed fits, pooled here for the picture)."""
    policy = results.policy
    if policy.empty:
        return False
    colours = size_colours(results.models)
    fig, axes = _figure(1, len(results.objectives), sharey=True)
    for ax, objective in zip(axes[0], results.objectives, strict=True):
        for model in results.models:
            cell = policy[(policy["objective"] == objective) & (policy["model"] == model)]
            if cell.empty:
                continue
            _points(ax, seed_summary(cell, "win_rate"), "win_rate", colours[model], model)
            _sft(ax, results, model, colours[model])
            _log_curve(ax, results, cell, model, colours[model])
        ax.set_title(objective)
        ax.set_xlabel("sqrt(KL(pi || pi_ref))")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("gold win rate vs human answers")
    axes[0][0].legend(title="size (star: SFT)", fontsize=8)
    return _save(fig, path, dpi)


def _log_curve(ax: Axes, results: Results, cell: pd.DataFrame, model: str, colour: object) -> None:
    r0 = results.sft_win_rate.get(model)
    d, w = cell["sqrt_kl"].to_numpy(float), cell["win_rate"].to_numpy(float)
    if r0 is None or len(d) < 3:
        return
    grid = np.linspace(1e-3, float(np.nanmax(d)), 100)
    ax.plot(grid, fit(d, w, LogForm(), Gain(), r0).predict(grid), color=colour, lw=1.0, alpha=0.8)


def fig_best_of_n(results: Results, best_of_n: pd.DataFrame | None, path: Path, dpi: int = 120) -> bool:
    """Per size: gold win rate vs sqrt(KL) of the DAAs (seed means of every checkpoint), of best-of-n on the trained
    proxy reward model with Gao et al.'s form d(a - b d) fitted to it, and of best-of-n on gold (the frontier)."""
    if best_of_n is None or best_of_n.empty:
        return False
    models = [m for m in results.models if m in set(best_of_n["model"])] or sorted(best_of_n["model"].unique())
    colours = objective_colours(results.objectives)
    fig, axes = _figure(1, len(models), sharey=True)
    for ax, model in zip(axes[0], models, strict=True):
        for objective in results.objectives:
            cell = results.policy[(results.policy["objective"] == objective) & (results.policy["model"] == model)]
            if not cell.empty:
                summary = seed_summary(cell, "win_rate")
                ax.scatter(
                    summary["sqrt_kl"], summary["win_rate"], s=8, color=colours[objective], alpha=0.6, label=objective
                )
        for selector, style, label in (("proxy", "-o", "best-of-n, proxy RM"), ("gold", "--s", "best-of-n, gold")):
            part = best_of_n[(best_of_n["model"] == model) & (best_of_n["selector"] == selector)]
            if part.empty:
                continue
            curve = part.groupby("n")[["sqrt_kl", "win_rate"]].agg(["mean", "std", "count"])
            n = curve[("win_rate", "count")].to_numpy()
            t = np.where(n > 1, stats.t.ppf(0.975, np.maximum(n - 1, 1)), 0.0)
            err = np.nan_to_num(t * curve[("win_rate", "std")].to_numpy() / np.sqrt(n))
            x, y = curve[("sqrt_kl", "mean")].to_numpy(), curve[("win_rate", "mean")].to_numpy()
            ax.errorbar(
                x,
                y,
                yerr=err,
                fmt=style,
                ms=3,
                color="black" if selector == "proxy" else "tab:red",
                lw=1.0,
                label=label,
            )
            if selector == "proxy" and len(x) >= 3:
                fitted = fit(x, y, QuadraticForm(), Gain(), float(y[0]))
                grid = np.linspace(0, float(x.max()), 60)
                ax.plot(grid, fitted.predict(grid), ":", color="black", lw=1.0, label="Gao form d(a - b d)")
        _sft(ax, results, model, "black")
        ax.set_title(model)
        ax.set_xlabel("sqrt(KL(pi || pi_ref))")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("gold win rate vs human answers")
    axes[0][0].legend(fontsize=7)
    return _save(fig, path, dpi)


def fig_proxy_vs_gold(results: Results, path: Path, dpi: int = 120) -> bool:
    """Along sqrt(KL), per size (columns): gold win rate next to held-out accuracy, mean margin and loss (rows)."""
    metrics = [c for c in ("win_rate", "val_accuracy", "val_margin", "val_loss") if results.has(c)]
    if len(metrics) < 2:
        return False
    colours = objective_colours(results.objectives)
    fig, axes = _figure(len(metrics), len(results.models), sharex="col")
    for col, model in enumerate(results.models):
        for row, metric in enumerate(metrics):
            ax = axes[row][col]
            for objective in results.objectives:
                cell = results.policy[(results.policy["objective"] == objective) & (results.policy["model"] == model)]
                if not cell.empty:
                    _points(ax, seed_summary(cell, metric), metric, colours[objective], objective if row == 0 else None)
            if metric == "win_rate":
                _sft(ax, results, model, "black")
            ax.grid(alpha=0.3)
            if col == 0:
                ax.set_ylabel(
                    {
                        "win_rate": "gold win rate",
                        "val_accuracy": "held-out accuracy",
                        "val_margin": "held-out margin",
                        "val_loss": "held-out loss",
                    }[metric]
                )
            if row == 0:
                ax.set_title(model)
            if row == len(metrics) - 1:
                ax.set_xlabel("sqrt(KL)")
    axes[0][0].legend(fontsize=8)
    return _save(fig, path, dpi)


def _variant_pairs(results: Results, exclude_objective: str | None = "RDPO") -> list[tuple[str, str, str]]:
    v = results.variants
    if v.empty:
        return []
    firsts = v.drop_duplicates("variant")
    if exclude_objective:
        firsts = firsts[firsts["objective"] != exclude_objective]
    # a variant whose objective has no main-grid cell has no base world to stand beside (see fig_against_dpo)
    main = set(zip(results.policy["objective"], results.policy["model"], strict=True))
    firsts = firsts[[(o, m) in main for o, m in zip(firsts["objective"], firsts["model"], strict=True)]]
    return list(zip(firsts["variant"], firsts["objective"], firsts["model"], strict=True))


def fig_against_dpo(results: Results, path: Path, dpi: int = 120) -> bool:
    """Per objective run only as a variant (panels): its win rate against sqrt(KL) beside the main grid's DPO of the
    same size (grey), seed means with 95% error bars (`analysis.against_dpo` reads the same curves)."""
    v = results.variants
    if v.empty:
        return False
    main = results.policy
    has_main = set(zip(main["objective"], main["model"], strict=True))
    keys = v.drop_duplicates(["variant", "objective", "model"])
    keys = [
        (variant, objective, model)
        for variant, objective, model in zip(keys["variant"], keys["objective"], keys["model"], strict=True)
        if (objective, model) not in has_main and ("DPO", model) in has_main
    ]
    if not keys:
        return False
    fig, axes = _figure(1, len(keys), sharey="row")
    for col, (variant, objective, model) in enumerate(keys):
        mine = v[(v["variant"] == variant) & (v["objective"] == objective) & (v["model"] == model)]
        dpo = main[(main["objective"] == "DPO") & (main["model"] == model)]
        ax = axes[0][col]
        _points(ax, seed_summary(dpo, "win_rate"), "win_rate", "grey", "DPO")
        _points(ax, seed_summary(mine, "win_rate"), "win_rate", "tab:red", objective)
        _sft(ax, results, model, "black")
        ax.set_title(f"{objective} / {model}")
        ax.set_xlabel("sqrt(KL)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("gold win rate")
    return _save(fig, path, dpi)


def fig_controls(results: Results, path: Path, dpi: int = 120) -> bool:
    """Per control (columns): its win rate and the base world's at the same betas (top), and the gold terms
    relevance and long-answer penalty (bottom), against sqrt(KL)."""
    pairs = _variant_pairs(results)
    if not pairs:
        return False
    fig, axes = _figure(2, len(pairs), sharey="row")
    for col, (variant, objective, model) in enumerate(pairs):
        mine = rows(results, variant)
        mine = mine[(mine["objective"] == objective) & (mine["model"] == model)]
        base = results.policy[
            (results.policy["objective"] == objective)
            & (results.policy["model"] == model)
            & results.policy["beta"].isin(mine["beta"].unique())
        ]
        for frame, colour, label in ((base, "grey", "base world"), (mine, "tab:red", variant)):
            _points(axes[0][col], seed_summary(frame, "win_rate"), "win_rate", colour, label)
            if "gold_relevance" in frame.columns:
                _points(axes[1][col], seed_summary(frame, "gold_relevance"), "gold_relevance", colour, None, "o")
                _points(axes[1][col], seed_summary(frame, "gold_long_penalty"), "gold_long_penalty", colour, None, "x")
        _sft(axes[0][col], results, model, "black")
        axes[0][col].set_title(f"{objective} / {model}: {variant}")
        axes[0][col].legend(fontsize=8)
        axes[1][col].set_xlabel("sqrt(KL)")
        for ax in axes[:, col]:
            ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("gold win rate")
    axes[1][0].set_ylabel("relevance (o), long penalty (x)")
    return _save(fig, path, dpi)


def fig_rdpo(results: Results, path: Path, dpi: int = 120) -> bool:
    """The R-DPO length ablation: win rate (left) and mean length (right) vs sqrt(KL) for DPO (alpha 0, the main
    grid at the ablation's betas) and each R-DPO alpha."""
    v = results.variants
    if v.empty or not (v["objective"] == "RDPO").any():
        return False
    rdpo = v[v["objective"] == "RDPO"]
    model = rdpo["model"].iloc[0]
    base = results.policy[
        (results.policy["objective"] == "DPO")
        & (results.policy["model"] == model)
        & results.policy["beta"].isin(rdpo["beta"].unique())
    ]
    curves = [("DPO (alpha 0)", base)] + [(f"R-DPO {name}", g) for name, g in rdpo.groupby("variant", sort=True)]
    colours = objective_colours([label for label, _ in curves])
    fig, axes = _figure(1, 2)
    for label, frame in curves:
        if frame.empty:
            continue
        _points(axes[0][0], seed_summary(frame, "win_rate"), "win_rate", colours[label], label)
        _points(axes[0][1], seed_summary(frame, "mean_length"), "mean_length", colours[label], label)
    _sft(axes[0][0], results, model, "black")
    axes[0][0].set_ylabel("gold win rate")
    axes[0][1].set_ylabel("mean answer length (tokens)")
    for ax in axes[0]:
        ax.set_xlabel("sqrt(KL)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    axes[0][0].set_title(f"R-DPO length ablation ({model})")
    return _save(fig, path, dpi)


def fig_gold_breakdown(results: Results, path: Path, dpi: int = 120) -> bool:
    """The gold reward's terms against sqrt(KL) for every main-grid checkpoint, a panel per size: what the policy
    gains and loses as KL grows (relevance, the short-answer and the long-answer penalties, the cut share)."""
    needed = ("gold_relevance", "gold_short_penalty", "gold_long_penalty")
    if not results.has(*needed):
        return False
    terms = {"gold_relevance": "relevance", "gold_short_penalty": "short penalty", "gold_long_penalty": "long penalty"}
    colours = objective_colours(list(terms))
    fig, axes = _figure(1, len(results.models), sharey=True)
    for ax, model in zip(axes[0], results.models, strict=True):
        cell = results.policy[results.policy["model"] == model]
        for column, label in terms.items():
            _points(ax, seed_summary(cell, column), column, colours[column], label)
        twin = ax.twinx()
        summary = seed_summary(cell, "cut_share") if "cut_share" in cell.columns else None
        if summary is not None:
            twin.scatter(summary["sqrt_kl"], summary["cut_share"], s=6, color="black", alpha=0.4)
            twin.set_ylim(0, 1)
            twin.set_ylabel("share cut at max_new_tokens (dots)")
        ax.set_title(model)
        ax.set_xlabel("sqrt(KL)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("mean gold term per answer")
    axes[0][0].legend(fontsize=8)
    return _save(fig, path, dpi)


LAB_FIGURES = {
    "lab_winrate_vs_sqrtkl.png": ("Win rate vs sqrt(KL): seed means with 95% error bars", fig_lab_winrate),
    "lab_proxy_vs_gold.png": ("Held-out proxies next to gold win rate along KL, per size", fig_proxy_vs_gold),
    "lab_gold_breakdown.png": ("The gold reward's terms and the cut share along KL, per size", fig_gold_breakdown),
    "lab_controls.png": ("Mechanism controls against the base world", fig_controls),
    "lab_rdpo.png": ("The R-DPO length ablation", fig_rdpo),
    "lab_against_dpo.png": ("Objectives against over-optimisation beside DPO", fig_against_dpo),
}


BEST_OF_N_FIGURE = ("lab_best_of_n.png", "Classic RLHF beside the DAAs: best-of-n on the proxy and on gold")


def draw_lab_figures(
    results: Results, out: Path, dpi: int = DEFAULT_DPI, best_of_n: pd.DataFrame | None = None
) -> dict[str, Path]:
    """Every lab figure the table supports; file name -> path."""
    written = {}
    for name, (_, draw) in LAB_FIGURES.items():
        if draw(results, out / name, dpi):
            written[name] = out / name
    name = BEST_OF_N_FIGURE[0]
    if fig_best_of_n(results, best_of_n, out / name, dpi):
        written[name] = out / name
    return written


__all__ = ["BEST_OF_N_FIGURE", "DEFAULT_DPI", "LAB_FIGURES", "draw_lab_figures", "seed_summary"]
