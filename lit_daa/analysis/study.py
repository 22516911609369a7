"""Every analysis of a results table in one pass, with no file I/O: `run_analysis` -> `Analysis`.

The figures (`figures.py`), the report (`report.py`) and the command line (`analyze.py`) only read an
`Analysis`, so the numbers in the report and those in the CSV files are the same objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from lit_daa.analysis.correlations import correlation_table, eq7_summary
from lit_daa.analysis.fits import OFFSETS, Gain, Intercept, LogForm, Offset, QuadraticForm
from lit_daa.analysis.headline import DEFAULT_TOP_K, peak_positions
from lit_daa.analysis.intra_epoch import run_peaks, smallest_beta_peaks
from lit_daa.analysis.length import length_summary, length_table
from lit_daa.analysis.results import Results
from lit_daa.analysis.scaling import fit_cells, form_comparison, order_cells, wide_fits

PREDICTORS = ("val_accuracy", "val_loss")


@dataclass(frozen=True)
class AnalysisOptions:
    """Choices the paper leaves open (PAPER.md sections 4 and 5), with the defaults `lit-daa analyze` uses.

    Attributes:
        offsets: the offset strategies fitted (all of `fits.OFFSETS` by default).
        curve_offset: the offset whose log-form curves Fig. 1 draws and the headline's per-cell RMSE quotes;
            cells of a size without an SFT row fall back to `fallback_offset` when this one needs R0.
        fallback_offset: see `curve_offset`.
        include_sft_point_in_fits: add the SFT win rate as a d = 0 point to every fit (off: see
            `scaling.fit_points`).
        include_sft_in_peaks: count the SFT point at d = 0 among a group's points for the peak and its
            interior-ness (on: the reference is where every curve starts).
        top_k: how many highest-KL checkpoints the over-optimisation drop averages.
        replicates: bootstrap replicates of the findings table's intervals (0: no findings table).
    """

    offsets: tuple[Offset, ...] = tuple(OFFSETS.values())
    curve_offset: Offset = field(default_factory=Gain)
    fallback_offset: Offset = field(default_factory=Intercept)
    include_sft_point_in_fits: bool = False
    include_sft_in_peaks: bool = True
    top_k: int = DEFAULT_TOP_K
    replicates: int = 400


@dataclass(frozen=True)
class Analysis:
    """The results of every analysis; tables are pandas DataFrames, empty when their columns are missing."""

    results: Results
    options: AnalysisOptions
    fits: pd.DataFrame  # long: one row per (objective, model, form, offset)
    fits_wide: pd.DataFrame  # one row per (objective, model, offset), forms side by side
    form_comparison: pd.DataFrame  # per offset: cells where the log form has the lower RMSE
    curve_fits: pd.DataFrame  # the log-form row Fig. 1 draws for each cell (curve offset or its fallback)
    peaks_by_objective: pd.DataFrame  # headline: peak position and drop per objective
    peaks_by_cell: pd.DataFrame  # the same per (objective, model)
    run_peaks: pd.DataFrame  # per run: best checkpoint vs end of epoch
    smallest_beta: pd.DataFrame  # run_peaks rows of the smallest DAA beta per (objective, model)
    length_table: pd.DataFrame
    length_summary: pd.DataFrame
    correlations_by_size: pd.DataFrame  # win rate vs accuracy / loss within a model size
    correlations_by_cell: pd.DataFrame  # the same within (model, objective): the loss scales differ by objective
    eq7: dict[str, float] = field(default_factory=dict)


def _curve_fits(fits: pd.DataFrame, offsets: Sequence[Offset]) -> pd.DataFrame:
    """Per cell, the log-form fit of the first offset in `offsets` that produced finite coefficients."""
    log = fits[(fits["form"] == LogForm.name) & fits["alpha"].notna()]
    chosen = []
    for _, cell in log.groupby(["objective", "model"], sort=False):
        for offset in offsets:
            row = cell[cell["offset"] == offset.name]
            if not row.empty:
                chosen.append(row.iloc[0])
                break
    return pd.DataFrame(chosen).reset_index(drop=True) if chosen else log.iloc[0:0]


def run_analysis(results: Results, options: AnalysisOptions | None = None) -> Analysis:
    """Fits, peaks, intra-epoch, length, correlation and Eq. 7 analyses of a prepared results table."""
    options = options or AnalysisOptions()
    # Offsets are plain instances without equality, so they are de-duplicated by name.
    by_name = {o.name: o for o in (*options.offsets, options.curve_offset, options.fallback_offset)}
    offsets = tuple(by_name.values())
    fits = fit_cells(results, (LogForm(), QuadraticForm()), offsets, options.include_sft_point_in_fits)
    reported = {offset.name for offset in options.offsets}
    fits_reported = fits[fits["offset"].isin(reported)].reset_index(drop=True)
    wide = order_cells(wide_fits(fits_reported), results, extra=["offset"]) if not fits_reported.empty else fits
    policy = results.policy
    peaks = run_peaks(policy)
    peaks = order_cells(peaks, results, extra=["beta"]) if not peaks.empty else peaks
    size_corr = correlation_table(policy, PREDICTORS, group_cols=("model",))
    cell_corr = correlation_table(policy, PREDICTORS, group_cols=("model", "objective"))
    return Analysis(
        results=results,
        options=options,
        fits=fits_reported,
        fits_wide=wide,
        form_comparison=form_comparison(wide) if not fits_reported.empty else pd.DataFrame(),
        curve_fits=_curve_fits(fits, (options.curve_offset, options.fallback_offset)),
        peaks_by_objective=peak_positions(results, ("objective",), options.top_k, options.include_sft_in_peaks),
        peaks_by_cell=peak_positions(results, ("objective", "model"), options.top_k, options.include_sft_in_peaks),
        run_peaks=peaks,
        smallest_beta=order_cells(smallest_beta_peaks(peaks), results) if not peaks.empty else peaks,
        length_table=order_cells(length_table(policy), results, ["beta"])
        if results.has("length_r2")
        else pd.DataFrame(),
        length_summary=length_summary(policy, results.models) if results.has("length_r2") else pd.DataFrame(),
        correlations_by_size=order_cells(size_corr, results, extra=["x"]) if not size_corr.empty else size_corr,
        correlations_by_cell=order_cells(cell_corr, results, extra=["x"]) if not cell_corr.empty else cell_corr,
        eq7=eq7_summary(policy) if results.has("chosen_logratio", "forward_kl") else {},
    )


__all__ = ["PREDICTORS", "Analysis", "AnalysisOptions", "run_analysis"]
