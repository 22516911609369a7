"""The report's figures (PAPER.md section 5), drawn from an `Analysis` with matplotlib's Agg canvas.

Figures are built as `matplotlib.figure.Figure` objects on a `FigureCanvasAgg`, never through pyplot, so
drawing them changes no global backend state of the calling process (a notebook keeps its own backend).
Each figure function returns False, and writes nothing, when the table lacks the columns it needs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import ListedColormap, LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from lit_daa.analysis.fits import FORMS, Coefficients
from lit_daa.analysis.study import Analysis

DEFAULT_DPI = 120
PANEL = (4.2, 3.4)  # inches per panel
LINESTYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P")


def _figure(rows: int, cols: int, sharex: bool = False, sharey: bool = False) -> tuple[Figure, np.ndarray]:
    """A figure on an Agg canvas with a (rows, cols) array of axes."""
    fig = Figure(figsize=(PANEL[0] * cols, PANEL[1] * rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, sharex=sharex, sharey=sharey, squeeze=False)
    return fig, axes


def size_colours(models: Sequence[str]) -> dict[str, tuple[float, float, float, float]]:
    """One colour per model size, light-to-dark along viridis from the smallest to the largest."""
    cmap = matplotlib.colormaps["viridis"]
    spots = np.linspace(0.1, 0.85, len(models)) if len(models) > 1 else [0.45]
    return {model: cmap(spot) for model, spot in zip(models, spots, strict=True)}


def objective_colours(objectives: Sequence[str]) -> dict[str, tuple[float, float, float, float]]:
    """One qualitative colour per objective."""
    cmap = matplotlib.colormaps["tab10"]
    return {objective: cmap(i % 10) for i, objective in enumerate(objectives)}


def _beta_norm(betas: pd.Series) -> LogNorm:
    """A log colour scale over the positive DAA betas (widened when there is only one)."""
    positive = betas[(betas > 0) & np.isfinite(betas)]
    lo, hi = (float(positive.min()), float(positive.max())) if not positive.empty else (0.1, 1.0)
    if lo == hi:
        lo, hi = lo / 2.0, hi * 2.0
    return LogNorm(vmin=lo, vmax=hi)


def _scatter_checkpoints(ax: Axes, points: pd.DataFrame, x: str, y: str, colour: object, label: str | None) -> None:
    """End-of-epoch checkpoints as filled markers, intra-epoch ones hollow and smaller."""
    final, intra = points[points["is_final"]], points[~points["is_final"]]
    ax.scatter(intra[x], intra[y], s=18, facecolors="none", edgecolors=[colour], linewidths=0.9)
    ax.scatter(final[x], final[y], s=34, color=[colour], label=label)


def _checkpoint_legend() -> list[Line2D]:
    """Legend entries explaining filled vs hollow markers."""
    return [
        Line2D([], [], marker="o", ls="", color="grey", label="end of epoch"),
        Line2D([], [], marker="o", ls="", markerfacecolor="none", color="grey", markersize=5, label="intra-epoch"),
    ]


def fig_winrate_vs_sqrtkl(analysis: Analysis, path: Path, dpi: int = DEFAULT_DPI) -> bool:
    """Fig. 1: win rate vs sqrt(KL), a panel per objective, a colour per size, fitted log-form curves."""
    results = analysis.results
    colours = size_colours(results.models)
    fig, axes = _figure(1, len(results.objectives), sharey=True)
    for ax, objective in zip(axes[0], results.objectives, strict=True):
        data = results.policy[results.policy["objective"] == objective]
        for model in results.models:
            cell = data[data["model"] == model]
            if cell.empty:
                continue
            _scatter_checkpoints(ax, cell, "sqrt_kl", "win_rate", colours[model], model)
            if model in results.sft_win_rate:
                ax.scatter([0.0], [results.sft_win_rate[model]], marker="*", s=110, color=[colours[model]], zorder=3)
            curve = analysis.curve_fits
            row = curve[(curve["objective"] == objective) & (curve["model"] == model)]
            if not row.empty:
                fit = row.iloc[0]
                grid = np.linspace(0.0, float(cell["sqrt_kl"].max()) * 1.03, 200)
                coef = Coefficients(float(fit["alpha"]), float(fit["beta"]), float(fit["intercept"]))
                ax.plot(grid, FORMS[fit["form"]].predict(grid, coef), color=colours[model], lw=1.4, alpha=0.8)
        ax.set_title(objective)
        ax.set_xlabel("sqrt(KL(pi || pi_ref))")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("win rate vs reference summaries")
    sft = Line2D([], [], marker="*", ls="", color="grey", markersize=10, label="SFT (d = 0)")
    offset_note = f"log-form fit ({analysis.options.curve_offset.name} offset)"
    fit_line = Line2D([], [], color="grey", label=offset_note)
    axes[0, -1].legend(
        handles=[*_sizes_legend(results.models, colours), *_checkpoint_legend(), sft, fit_line], fontsize=7, loc="best"
    )
    fig.suptitle("Win rate vs sqrt(KL): all checkpoints, fitted R(d) = d (alpha - beta log d)")
    fig.savefig(path, dpi=dpi)
    return True


def _sizes_legend(models: Sequence[str], colours: dict[str, object]) -> list[Line2D]:
    """Legend entries for the model-size colours."""
    return [Line2D([], [], marker="o", ls="", color=colours[m], label=m) for m in models]


def fig_intra_epoch(analysis: Analysis, path: Path, dpi: int = DEFAULT_DPI) -> bool:
    """Fig. 2: win rate (top) and sqrt(KL) (bottom) against the epoch fraction, one line per run.

    Colour is the DAA beta on a log scale (per objective, as beta grids differ); line style is the model size.
    Each trajectory starts at its size's SFT point (epoch fraction 0) when there is one.
    """
    results = analysis.results
    styles = {m: LINESTYLES[i % len(LINESTYLES)] for i, m in enumerate(results.models)}
    markers = {m: MARKERS[i % len(MARKERS)] for i, m in enumerate(results.models)}
    # plasma without its pale-yellow end, which vanishes on white; reversed so small beta (wide budget) is warm.
    cmap = ListedColormap(matplotlib.colormaps["plasma"](np.linspace(0.0, 0.82, 256))[::-1], name="plasma_trunc_r")
    fig, axes = _figure(2, len(results.objectives), sharex=True)
    for col, objective in enumerate(results.objectives):
        data = results.policy[results.policy["objective"] == objective]
        norm = _beta_norm(data["beta"])
        for (model, beta), run in data.groupby(["model", "beta"], sort=True):
            run = run.sort_values("epoch_fraction")
            if model in results.sft_win_rate:
                start = pd.DataFrame(
                    {"epoch_fraction": [0.0], "win_rate": [results.sft_win_rate[model]], "sqrt_kl": [0.0]}
                )
                run = pd.concat([start, run[["epoch_fraction", "win_rate", "sqrt_kl"]]], ignore_index=True)
            colour = cmap(norm(beta)) if beta > 0 else "grey"
            for row, y in enumerate(("win_rate", "sqrt_kl")):
                axes[row, col].plot(
                    run["epoch_fraction"], run[y], ls=styles[model], marker=markers[model], ms=3.5, color=colour, lw=1.3
                )
        axes[0, col].set_title(objective)
        axes[1, col].set_xlabel("fraction of the epoch")
        fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=axes[:, col], label="DAA beta", shrink=0.8)
        for row in range(2):
            axes[row, col].grid(alpha=0.3)
    axes[0, 0].set_ylabel("win rate")
    axes[1, 0].set_ylabel("sqrt(KL)")
    size_handles = [Line2D([], [], ls=styles[m], marker=markers[m], color="grey", label=m) for m in results.models]
    axes[0, 0].legend(handles=size_handles, fontsize=7, loc="best")
    fig.suptitle("Intra-epoch dynamics: win rate and KL along each run (SFT at 0)")
    fig.savefig(path, dpi=dpi)
    return True


def fig_length_r2(analysis: Analysis, path: Path, dpi: int = DEFAULT_DPI) -> bool:
    """Fig. 3: length R^2 against KL (top, all checkpoints) and against DAA beta (bottom, end of epoch), per size."""
    results = analysis.results
    if not results.has("length_r2"):
        return False
    colours = objective_colours(results.objectives)
    points = results.policy[results.policy["length_r2"].notna()]
    models = [m for m in results.models if (points["model"] == m).any()]
    fig, axes = _figure(2, len(models), sharey=True)
    for col, model in enumerate(models):
        data = points[points["model"] == model]
        for objective in results.objectives:
            cell = data[data["objective"] == objective]
            if cell.empty:
                continue
            _scatter_checkpoints(axes[0, col], cell, "kl", "length_r2", colours[objective], objective)
            final = cell[cell["is_final"]].sort_values("beta")
            axes[1, col].plot(final["beta"], final["length_r2"], marker="o", color=colours[objective], label=objective)
        summary = analysis.length_summary
        mean = summary.loc[summary["model"] == model, "mean_r2"]
        axes[0, col].set_title(f"{model}" + (f" (mean R^2 {float(mean.iloc[0]):.2f})" if not mean.empty else ""))
        axes[0, col].set_xlabel("KL(pi || pi_ref)")
        axes[1, col].set_xlabel("DAA beta (end of epoch)")
        if (data["beta"] > 0).all():
            axes[1, col].set_xscale("log")
        for row in range(2):
            axes[row, col].grid(alpha=0.3)
    axes[0, 0].set_ylabel("length R^2 of implicit reward")
    axes[1, 0].set_ylabel("length R^2 of implicit reward")
    objective_handles = [Line2D([], [], marker="o", ls="", color=colours[o], label=o) for o in results.objectives]
    axes[0, -1].legend(handles=[*objective_handles, *_checkpoint_legend()], fontsize=7, loc="best")
    fig.suptitle("How much of the implicit reward response length explains")
    fig.savefig(path, dpi=dpi)
    return True


def fig_winrate_vs_accuracy_loss(analysis: Analysis, path: Path, dpi: int = DEFAULT_DPI) -> bool:
    """Fig. 4: win rate against held-out implicit-reward accuracy and DAA loss, a column per model size."""
    results = analysis.results
    metrics = [col for col in ("val_accuracy", "val_loss") if results.has(col)]
    if not metrics:
        return False
    colours = objective_colours(results.objectives)
    fig, axes = _figure(len(metrics), len(results.models), sharey=True)
    corr = analysis.correlations_by_size
    for row, metric in enumerate(metrics):
        for col, model in enumerate(results.models):
            ax = axes[row, col]
            data = results.policy[results.policy["model"] == model]
            for objective in results.objectives:
                cell = data[(data["objective"] == objective) & data[metric].notna()]
                if not cell.empty:
                    _scatter_checkpoints(ax, cell, metric, "win_rate", colours[objective], objective)
            stats = corr[(corr["model"] == model) & (corr["x"] == metric)]
            if not stats.empty:
                s = stats.iloc[0]
                text = f"Pearson r = {s['pearson_r']:.2f}\nSpearman rho = {s['spearman_rho']:.2f}\nn = {int(s['n'])}"
                ax.text(
                    0.03,
                    0.97,
                    text,
                    transform=ax.transAxes,
                    va="top",
                    fontsize=7,
                    bbox={"boxstyle": "round", "fc": "white", "alpha": 0.7},
                )
            ax.set_title(f"{model}: win rate vs {metric}", fontsize=9)
            ax.set_xlabel(metric)
            ax.grid(alpha=0.3)
        axes[row, 0].set_ylabel("win rate")
    objective_handles = [Line2D([], [], marker="o", ls="", color=colours[o], label=o) for o in results.objectives]
    axes[0, -1].legend(handles=[*objective_handles, *_checkpoint_legend()], fontsize=7, loc="lower right")
    fig.suptitle("Within a model size: do held-out accuracy and loss predict win rate?")
    fig.savefig(path, dpi=dpi)
    return True


def fig_eq7(analysis: Analysis, path: Path, dpi: int = DEFAULT_DPI) -> bool:
    """Eq. 7: the chosen responses' mean log-ratio against -KL(pi_ref || pi), with the line y = x."""
    results = analysis.results
    if not results.has("chosen_logratio", "forward_kl"):
        return False
    colours = size_colours(results.models)
    fig, axes = _figure(1, 1)
    ax = axes[0, 0]
    data = results.policy[results.policy["chosen_logratio"].notna() & results.policy["forward_kl"].notna()]
    for model in results.models:
        cell = data[data["model"] == model].assign(neg_forward_kl=lambda d: -d["forward_kl"])
        if not cell.empty:
            _scatter_checkpoints(ax, cell, "neg_forward_kl", "chosen_logratio", colours[model], model)
    both = np.concatenate([-data["forward_kl"].to_numpy(float), data["chosen_logratio"].to_numpy(float)])
    lo, hi = (float(both.min()), float(both.max())) if both.size else (-1.0, 0.0)
    ax.plot([lo, hi], [lo, hi], color="black", lw=1, ls="--", label="y = x")
    eq7 = analysis.eq7
    if eq7:
        ax.text(
            0.03,
            0.97,
            f"Pearson r = {eq7['pearson_r']:.3f}\nslope = {eq7['slope']:.2f}\nn = {eq7['n']}",
            transform=ax.transAxes,
            va="top",
            fontsize=8,
            bbox={"boxstyle": "round", "fc": "white", "alpha": 0.7},
        )
    ax.set_xlabel("-KL(pi_ref || pi)  (forward_kl, negated)")
    ax.set_ylabel("mean log pi/pi_ref of chosen responses")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    ax.set_title("Eq. 7: chosen log-ratio vs -KL(pi_ref || pi)")
    fig.savefig(path, dpi=dpi)
    return True


@dataclass(frozen=True)
class FigureSpec:
    """A figure of the report: its file name, caption and drawing function."""

    filename: str
    caption: str
    draw: Callable[[Analysis, Path, int], bool]


FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec(
        "fig1_winrate_vs_sqrtkl.png", "Win rate vs sqrt(KL) with the fitted log-form curves", fig_winrate_vs_sqrtkl
    ),
    FigureSpec("fig2_intra_epoch.png", "Win rate and sqrt(KL) along the epoch, one line per run", fig_intra_epoch),
    FigureSpec("fig3_length_r2.png", "Length R^2 of the implicit reward against KL and DAA beta", fig_length_r2),
    FigureSpec(
        "fig4_winrate_vs_accuracy_loss.png",
        "Win rate vs held-out implicit-reward accuracy and DAA loss, within each size",
        fig_winrate_vs_accuracy_loss,
    ),
    FigureSpec("fig_eq7.png", "Chosen log-ratio vs -KL(pi_ref || pi) (Eq. 7)", fig_eq7),
)


def draw_figures(analysis: Analysis, out: Path, dpi: int = DEFAULT_DPI) -> dict[str, Path]:
    """Draw every figure of `FIGURES` that the data supports into `out`; file name -> path of those written."""
    written = {}
    for spec in FIGURES:
        path = out / spec.filename
        if spec.draw(analysis, path, dpi):
            written[spec.filename] = path
    return written


__all__ = [
    "DEFAULT_DPI",
    "FIGURES",
    "FigureSpec",
    "draw_figures",
    "fig_eq7",
    "fig_intra_epoch",
    "fig_length_r2",
    "fig_winrate_vs_accuracy_loss",
    "fig_winrate_vs_sqrtkl",
    "objective_colours",
    "size_colours",
]
