"""Scaling-law fits per (objective, model size) cell and the log-vs-quadratic comparison (PAPER.md section 4).

A thin layer over `lit_daa.analysis.fits`: it decides which points enter each fit (all checkpoints of a cell,
intra-epoch and end-of-epoch, as the paper's Fig. 1 plots them; optionally the SFT point at d = 0), supplies the
SFT win rate to the `gain` offset, and reshapes the long fit table into one row per (cell, offset) with the two
forms side by side.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from lit_daa.analysis.fits import TABLE_COLUMNS, Form, LogForm, Offset, QuadraticForm, fit_table
from lit_daa.analysis.results import Results

CELL = ("objective", "model")
# The per-form columns that go side by side in the wide table.
_FORM_VALUES = ("alpha", "beta", "intercept", "rmse", "d_star", "peak_win_rate")


def fit_points(results: Results, include_sft_point: bool = False) -> pd.DataFrame:
    """The points each cell's fit sees: every checkpoint of the cell, plus its size's SFT point when asked.

    The SFT point is off by default: the `gain` offset already pins the curve to it (there it would add a zero
    residual and only dilute the RMSE), while under `raw` it would count against both forms a residual the forms
    cannot avoid (they are 0 at d = 0).
    """
    points = results.policy[[*CELL, "run_id", "sqrt_kl", "win_rate", "is_final", "epoch_fraction"]]
    if not include_sft_point or results.reference.empty:
        return points.reset_index(drop=True)
    extra = []
    for objective in results.objectives:
        models = results.policy.loc[results.policy["objective"] == objective, "model"].unique()
        ref = results.reference[results.reference["model"].isin(models)]
        extra.append(ref.assign(objective=objective)[points.columns])
    return pd.concat([points, *extra], ignore_index=True)


def fit_cells(
    results: Results,
    forms: Sequence[Form] = (LogForm(), QuadraticForm()),
    offsets: Sequence[Offset] = (),
    include_sft_point: bool = False,
) -> pd.DataFrame:
    """The long fit table: one row per (objective, model, form, offset), in `fits.TABLE_COLUMNS` layout.

    Cells of a model without an SFT row get no `gain` rows (there is no R0 to subtract). With `offsets` empty,
    every offset of `fits.OFFSETS` is fitted.
    """
    from lit_daa.analysis.fits import OFFSETS

    offsets = tuple(offsets) or tuple(OFFSETS.values())
    points = fit_points(results, include_sft_point)
    has_sft = points["model"].isin(list(results.sft_win_rate))
    # fit_table wants an R0 for every model once it is given a mapping, so the models without one go separately.
    parts = [
        fit_table(points[has_sft], CELL, forms, offsets, sft_win_rate=results.sft_win_rate),
        fit_table(points[~has_sft], CELL, forms, offsets, sft_win_rate=None),
    ]
    table = pd.concat([p for p in parts if not p.empty], ignore_index=True)
    if table.empty:
        return pd.DataFrame(columns=[*CELL, *TABLE_COLUMNS])
    return order_cells(table, results, extra=["form", "offset"])


def order_cells(table: pd.DataFrame, results: Results, extra: Sequence[str] = ()) -> pd.DataFrame:
    """Rows sorted by objective (when a column), then model size (smallest first), then the `extra` columns."""
    rank = {m: i for i, m in enumerate(results.models)}
    keyed = table.assign(_size=table["model"].map(rank))
    keys = [*(["objective"] if "objective" in table.columns else []), "_size", *extra]
    return keyed.sort_values(keys, kind="stable").drop(columns="_size").reset_index(drop=True)


def wide_fits(fits: pd.DataFrame) -> pd.DataFrame:
    """One row per (objective, model, offset) with `{form}_{value}` columns for each form and the RMSE comparison.

    Adds `rmse_ratio` (log RMSE / quadratic RMSE) and `log_better` (log RMSE < quadratic RMSE, equal within
    rounding counting as not lower; NA when either fit failed).
    """
    log, quad = LogForm.name, QuadraticForm.name
    index = [*CELL, "offset"]
    wide = fits.set_index([*index, "form"])[list(_FORM_VALUES)].unstack("form")
    wide.columns = [f"{form}_{value}" for value, form in wide.columns]
    wide = wide.join(fits.groupby(index)["n"].max()).reset_index()
    for form in (log, quad):
        for value in _FORM_VALUES:
            if f"{form}_{value}" not in wide.columns:
                wide[f"{form}_{value}"] = np.nan
    both = wide[f"{log}_rmse"].notna() & wide[f"{quad}_rmse"].notna()
    wide["rmse_ratio"] = wide[f"{log}_rmse"] / wide[f"{quad}_rmse"]
    log_rmse, quad_rmse = wide[f"{log}_rmse"], wide[f"{quad}_rmse"]
    # Equal up to rounding (e.g. both forms fit a straight line exactly) is a tie, not a win for the log form.
    tie = np.isclose(log_rmse, quad_rmse, rtol=1e-6, atol=1e-12)
    better = ((log_rmse < quad_rmse) & ~tie).astype("boolean")
    wide.loc[tie, "rmse_ratio"] = 1.0  # 1e-17 / 3e-17 is rounding noise, not a ratio
    better[~both] = pd.NA  # undecided where a fit failed, not False
    wide["log_better"] = better
    ordered = [*index, "n", *(f"{form}_{value}" for form in (log, quad) for value in _FORM_VALUES)]
    return wide[[*ordered, "rmse_ratio", "log_better"]]


def form_comparison(wide: pd.DataFrame) -> pd.DataFrame:
    """Per offset: in how many cells the log form's RMSE is below the quadratic form's, and the median RMSE ratio."""
    rows = []
    for offset, group in wide.groupby("offset", sort=False):
        decided = group["log_better"].dropna().astype(bool)
        rows.append(
            {
                "offset": offset,
                "cells": len(decided),
                "log_better": int(decided.sum()),
                "median_rmse_ratio": float(group["rmse_ratio"].median()) if len(decided) else np.nan,
                "median_log_rmse": float(group[f"{LogForm.name}_rmse"].median()),
                "median_quadratic_rmse": float(group[f"{QuadraticForm.name}_rmse"].median()),
            }
        )
    return pd.DataFrame(rows)


__all__ = ["CELL", "fit_cells", "fit_points", "form_comparison", "order_cells", "wide_fits"]
