"""The Markdown report and its headline: every statement is computed from an `Analysis`, none is fixed text
about the outcome (the wording says what was measured, the numbers and yes/no come from the data).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from lit_daa.analysis.figures import FIGURES
from lit_daa.analysis.fits import LogForm, QuadraticForm
from lit_daa.analysis.headline import count_true
from lit_daa.analysis.markdown import fmt, markdown_table, pct
from lit_daa.analysis.study import Analysis

LOG, QUAD = LogForm.name, QuadraticForm.name


def _data_line(analysis: Analysis) -> str:
    """What the table holds."""
    results = analysis.results
    policy = results.policy
    sft = ", ".join(m for m in results.models if m in results.sft_win_rate) or "none"
    return (
        f"Data: {len(policy)} checkpoints of {policy['run_id'].nunique()} runs; objectives "
        f"{', '.join(results.objectives)}; sizes {', '.join(results.models)} (smallest first); SFT reference for {sft}."
    )


def _peak_line(row: pd.Series, analysis: Analysis) -> str:
    """One objective's peak position and over-optimisation drop."""
    where = "interior" if row["interior"] else "not interior"
    best = (
        "the SFT reference itself"
        if row["best_is_sft"]
        else f"{row['best_model']}, beta {fmt(row['best_beta'])}, {pct(row['best_epoch_fraction'])} of the epoch"
    )
    sft_note = " (SFT points at 0 included)" if analysis.options.include_sft_in_peaks else ""
    return (
        f"**{row['objective']}**: best win rate {fmt(row['best_win_rate'])} at sqrt(KL) {fmt(row['best_sqrt_kl'])} "
        f"({best}): **{where}**; its points span sqrt(KL) {fmt(row['min_sqrt_kl'])} to {fmt(row['max_sqrt_kl'])}"
        f"{sft_note}. The {row['top_k']} highest-KL checkpoints average {fmt(row['top_k_mean_win_rate'])}, "
        f"**{row['top_k_drop_pp']:.1f} points below the peak**; the single highest-KL one ({row['highest_model']}, "
        f"beta {fmt(row['highest_beta'])}, sqrt(KL) {fmt(row['highest_sqrt_kl'])}) has {fmt(row['highest_win_rate'])}, "
        f"{row['highest_drop_pp']:.1f} points below."
    )


def _fit_lines(analysis: Analysis) -> list[str]:
    """Log vs quadratic RMSE: the count per offset, then every cell under the curve offset."""
    comparison = analysis.form_comparison
    if comparison.empty:
        return ["Fits: no cell had enough points for a fit."]
    curve = analysis.options.curve_offset.name
    ordered = pd.concat([comparison[comparison["offset"] == curve], comparison[comparison["offset"] != curve]])
    counts = [
        f"{int(r['log_better'])}/{int(r['cells'])} cells with the {r['offset']} offset "
        f"(median log/quadratic RMSE ratio {fmt(r['median_rmse_ratio'], 2)})"
        for _, r in ordered.iterrows()
    ]
    lines = [
        "Log form vs quadratic form (fits on all checkpoints, intra-epoch and end of epoch, of each objective x "
        f"size cell): log RMSE < quadratic RMSE in {'; '.join(counts)}."
    ]
    cells = analysis.fits_wide[analysis.fits_wide["offset"] == curve]
    for _, r in cells.iterrows():
        verdict = "no fit" if pd.isna(r["log_better"]) else ("log lower" if r["log_better"] else "log not lower")
        lines.append(
            f"  - {r['objective']} / {r['model']} ({curve}): RMSE log {fmt(r[f'{LOG}_rmse'])} vs quadratic "
            f"{fmt(r[f'{QUAD}_rmse'])} ({verdict}); log-form peak d* = {fmt(r[f'{LOG}_d_star'])}, "
            f"R(d*) = {fmt(r[f'{LOG}_peak_win_rate'])}"
        )
    return lines


def _smallest_beta_lines(analysis: Analysis) -> list[str]:
    """Whether, at each cell's smallest DAA beta, the best checkpoint comes before the end of the epoch."""
    table = analysis.smallest_beta
    if table.empty:
        return []
    yes, total = count_true(table["best_before_end"])
    lines = [
        f"At the smallest beta, the best checkpoint comes before the end of the epoch in **{yes}/{total}** "
        "(objective, size) cells:"
    ]
    for _, r in table.iterrows():
        z = f", z = {r['drop_z']:.1f}" if np.isfinite(r["drop_z"]) else ""
        detail = (
            f"best at {pct(r['best_epoch_fraction'])} of the epoch, {r['drop_pp']:.1f} points above the end "
            f"checkpoint{z}"
            if r["best_before_end"]
            else f"best at the end ({pct(r['end_epoch_fraction'])})"
        )
        unfinished = "" if r["has_final"] else " (no end-of-epoch checkpoint: the last one stands in)"
        lines.append(
            f"  - {r['objective']} / {r['model']} (beta {fmt(r['beta'])}): "
            f"{'yes' if r['best_before_end'] else 'no'}, {detail}{unfinished}"
        )
    return lines


def _length_line(analysis: Analysis) -> list[str]:
    """The length R^2 level per size and whether it falls with size."""
    summary = analysis.length_summary
    if summary.empty:
        return []
    levels = ", ".join(f"{r['model']} {fmt(r['mean_r2'])}" for _, r in summary.iterrows())
    means = summary["mean_r2"].to_numpy(float)
    falls = "yes" if len(means) > 1 and bool(np.all(np.diff(means) < 0)) else "no"
    with_kl = ", ".join(f"{r['model']} {fmt(r['pearson_r_with_kl'], 2)}" for _, r in summary.iterrows())
    with_beta = ", ".join(f"{r['model']} {fmt(r['spearman_rho_with_beta'], 2)}" for _, r in summary.iterrows())
    return [
        f"Length: mean length R^2 by size (smallest first) {levels}; falls with every step up in size: {falls}. "
        f"Pearson r of R^2 with KL: {with_kl}; Spearman rho of end-of-epoch R^2 with beta: {with_beta}."
    ]


def _correlation_line(analysis: Analysis) -> list[str]:
    """Within-size correlations of win rate with held-out accuracy and loss."""
    corr = analysis.correlations_by_size
    if corr.empty:
        return []
    parts = [
        f"{r['model']} {r['x']} r {fmt(r['pearson_r'], 2)} / rho {fmt(r['spearman_rho'], 2)} (n {r['n']})"
        for _, r in corr.iterrows()
    ]
    return ["Within a size, win rate vs held-out metrics (Pearson r / Spearman rho): " + "; ".join(parts) + "."]


def _eq7_line(analysis: Analysis) -> list[str]:
    """How closely the chosen log-ratio follows -KL(pi_ref || pi)."""
    eq7 = analysis.eq7
    if not eq7:
        return []
    return [
        f"Eq. 7: chosen_logratio vs -forward_kl: Pearson r {fmt(eq7['pearson_r'])}, least-squares slope "
        f"{fmt(eq7['slope'])}, intercept {fmt(eq7['intercept'])}, mean gap {fmt(eq7['mean_gap'])} (n {eq7['n']})."
    ]


def headline_lines(analysis: Analysis) -> list[str]:
    """The headline as Markdown bullet lines (sub-items indented), each measured from the data."""
    items = [_data_line(analysis)]
    items += [_peak_line(row, analysis) for _, row in analysis.peaks_by_objective.iterrows()]
    items += _fit_lines(analysis)
    items += _smallest_beta_lines(analysis)
    items += _length_line(analysis)
    items += _correlation_line(analysis)
    items += _eq7_line(analysis)
    return [line if line.startswith("  - ") else f"- {line}" for line in items]


FIT_HEADERS = {
    "n": "n",
    f"{LOG}_alpha": "log alpha",
    f"{LOG}_beta": "log beta",
    f"{LOG}_intercept": "log R(0)",
    f"{LOG}_rmse": "log RMSE",
    f"{LOG}_d_star": "log d*",
    f"{LOG}_peak_win_rate": "log R(d*)",
    f"{QUAD}_alpha": "quad alpha",
    f"{QUAD}_beta": "quad beta",
    f"{QUAD}_intercept": "quad R(0)",
    f"{QUAD}_rmse": "quad RMSE",
    f"{QUAD}_d_star": "quad d*",
    f"{QUAD}_peak_win_rate": "quad R(d*)",
    "rmse_ratio": "RMSE log/quad",
    "log_better": "log lower",
}
PEAK_HEADERS = {
    "best_epoch_fraction": "best at epoch",
    "best_win_rate": "best win rate",
    "best_sqrt_kl": "best sqrt(KL)",
    "end_win_rate": "end win rate",
    "end_sqrt_kl": "end sqrt(KL)",
    "best_before_end": "best before end",
    "drop_pp": "drop (points)",
    "drop_z": "drop z",
}
CELL_PEAK_HEADERS = {
    "points": "points",
    "best_win_rate": "best win rate",
    "best_sqrt_kl": "best sqrt(KL)",
    "best_beta": "best beta",
    "interior": "interior",
    "top_k_mean_win_rate": "top-k KL mean",
    "top_k_drop_pp": "top-k drop (points)",
    "highest_sqrt_kl": "highest sqrt(KL)",
    "highest_drop_pp": "highest-KL drop (points)",
}
CORR_COLUMNS = ("x", "n", "pearson_r", "pearson_p", "spearman_rho", "spearman_p")


def _figure_block(figures: Mapping[str, Path], filename: str) -> list[str]:
    """The Markdown image line of a figure that was written, or nothing."""
    spec = next(s for s in FIGURES if s.filename == filename)
    return [f"![{spec.caption}]({filename})", ""] if filename in figures else []


def build_report(analysis: Analysis, figures: Mapping[str, Path], tables: Mapping[str, Path]) -> str:
    """The full Markdown report; `figures` and `tables` map file names (relative to the report) to their paths."""
    options = analysis.options
    results = analysis.results
    offsets = ", ".join(o.name for o in options.offsets)
    sft_fit = "included as a d = 0 point" if options.include_sft_point_in_fits else "not a fit point"
    lines = [
        f"# lit-daa analysis{f' of `{results.source.name}`' if results.source else ''}",
        "",
        "## Headline (as measured)",
        "",
        *headline_lines(analysis),
        "",
        "Definitions: a group's points are its checkpoints (intra-epoch and end of epoch)"
        f"{' plus the SFT point of each size at d = 0' if options.include_sft_in_peaks else ''}; the peak is the "
        "point with the best win rate; it is *interior* when its sqrt(KL) is strictly between the lowest and the "
        f"highest sqrt(KL) of the group; the drop is the peak minus the mean win rate of the k = {options.top_k} "
        "highest-KL checkpoints, in win-rate points (percent).",
        "",
    ]
    if results.notes:
        lines += ["Data notes:", "", *(f"- {note}" for note in results.notes), ""]

    lines += [
        "## Win rate vs sqrt(KL) and scaling-law fits",
        "",
        *_figure_block(figures, "fig1_winrate_vs_sqrtkl.png"),
        "Forms (d = sqrt(KL); alpha, beta are fit coefficients, not the DAA beta): log (RL) form "
        "R(d) = d (alpha - beta log d), quadratic (best-of-n) form R(d) = d (alpha - beta d), least squares. "
        "**Each (objective, size) fit uses all checkpoints of the cell, intra-epoch and end of epoch**, as the "
        f"paper's Fig. 1 does; the SFT win rate is {sft_fit}. Offsets: raw (the forms as written, 0 at d = 0), "
        "gain (fit R - R_SFT; R(0) = SFT win rate), intercept (free R(0)). Fitted here: "
        f"{offsets}. Fig. 1 draws the log form with the {options.curve_offset.name} offset "
        f"({options.fallback_offset.name} where a size has no SFT row). Peaks: log d* = exp(alpha/beta - 1); "
        "inf means the fitted curve never turns down.",
        "",
        "### Log vs quadratic RMSE",
        "",
        markdown_table(
            analysis.form_comparison,
            headers={
                "log_better": "cells with log RMSE lower",
                "median_rmse_ratio": "median RMSE log/quad",
                "median_log_rmse": "median log RMSE",
                "median_quadratic_rmse": "median quad RMSE",
            },
        )
        if not analysis.form_comparison.empty
        else "No fits.",
        "",
        "### Coefficients per cell",
        "",
        markdown_table(analysis.fits_wide, ["objective", "model", "offset", *FIT_HEADERS], FIT_HEADERS)
        if not analysis.fits_wide.empty
        else "No fits.",
        "",
        "### Peak and over-optimisation per cell",
        "",
        markdown_table(analysis.peaks_by_cell, ["objective", "model", *CELL_PEAK_HEADERS], CELL_PEAK_HEADERS),
        "",
        "## Intra-epoch dynamics",
        "",
        *_figure_block(figures, "fig2_intra_epoch.png"),
        "Per run, the checkpoint with the best win rate (earliest on a tie) against the end-of-epoch checkpoint. "
        "drop = best - end in win-rate points; z = drop / combined binomial standard error (a rough guide to "
        "whether the drop exceeds judge noise).",
        "",
        markdown_table(analysis.run_peaks, ["objective", "model", "beta", *PEAK_HEADERS], PEAK_HEADERS),
        "",
        "## Length",
        "",
    ]
    if analysis.length_summary.empty:
        lines += ["The table has no length_r2 values.", ""]
    else:
        lines += [
            *_figure_block(figures, "fig3_length_r2.png"),
            "Per size, over all checkpoints: mean and median R^2 of regressing the implicit reward on response "
            "length, least-squares slope of R^2 on KL (per nat), Pearson r of R^2 with KL, and the Spearman rho of "
            "end-of-epoch R^2 with the DAA beta within each objective, averaged over objectives.",
            "",
            markdown_table(analysis.length_summary),
            "",
            "End-of-epoch checkpoints:",
            "",
            markdown_table(analysis.length_table),
            "",
        ]
    lines += ["## Do held-out accuracy and loss predict win rate?", ""]
    if analysis.correlations_by_size.empty:
        lines += ["The table has no val_accuracy or val_loss values.", ""]
    else:
        lines += [
            *_figure_block(figures, "fig4_winrate_vs_accuracy_loss.png"),
            "Correlation of win rate with each metric over the checkpoints of one model size (all objectives "
            "pooled; p-values from the Fisher z approximation):",
            "",
            markdown_table(analysis.correlations_by_size, ["model", *CORR_COLUMNS]),
            "",
            "Within (size, objective), since DAA losses of different objectives are on different scales:",
            "",
            markdown_table(analysis.correlations_by_cell, ["objective", "model", *CORR_COLUMNS]),
            "",
        ]
    lines += ["## Eq. 7: chosen log-ratio vs -KL(pi_ref || pi)", ""]
    if analysis.eq7:
        eq7 = pd.DataFrame([analysis.eq7])
        lines += [*_figure_block(figures, "fig_eq7.png"), markdown_table(eq7), ""]
    else:
        lines += ["The table has no chosen_logratio or forward_kl values.", ""]
    lines += ["## Files", "", *(f"- [{name}]({name})" for name in sorted(tables)), ""]
    return "\n".join(lines)


__all__ = ["build_report", "headline_lines"]
