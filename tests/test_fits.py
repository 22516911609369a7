"""Tests of the scaling-law fits: planted coefficients, noise, form comparison, peaks and the grouped table."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lit_daa.analysis import (
    FORMS,
    OFFSETS,
    Coefficients,
    FitError,
    Form,
    Gain,
    Intercept,
    LogForm,
    QuadraticForm,
    Raw,
    fit,
    fit_table,
)
from lit_daa.errors import InputError

D = np.linspace(0.0, 6.0, 25)  # includes d = 0, where both forms are 0
ALPHA, BETA, R0, C = 0.9, 0.35, 0.3, 0.2


def _planted(offset_name: str) -> tuple[float, float | None]:
    """(true intercept, r0 passed to the fit) for each offset strategy."""
    return {"raw": (0.0, None), "gain": (R0, R0), "intercept": (C, None)}[offset_name]


@pytest.mark.parametrize("form_name", sorted(FORMS))
@pytest.mark.parametrize("offset_name", sorted(OFFSETS))
def test_noise_free_points_give_back_the_planted_coefficients(form_name: str, offset_name: str) -> None:
    form, offset = FORMS[form_name], OFFSETS[offset_name]
    intercept, r0 = _planted(offset_name)
    r = form.predict(D, Coefficients(ALPHA, BETA, intercept))
    result = fit(D, r, form, offset, r0=r0)
    assert (result.alpha, result.beta, result.intercept) == pytest.approx((ALPHA, BETA, intercept), abs=1e-9)
    assert result.rmse == pytest.approx(0.0, abs=1e-9)
    assert result.n == len(D)
    assert np.allclose(result.predict(D), r)


@pytest.mark.parametrize("form_name", sorted(FORMS))
@pytest.mark.parametrize("offset_name", sorted(OFFSETS))
def test_noisy_points_give_back_the_coefficients_approximately(form_name: str, offset_name: str) -> None:
    form, offset = FORMS[form_name], OFFSETS[offset_name]
    intercept, r0 = _planted(offset_name)
    rng = np.random.default_rng(0)
    d = rng.uniform(0.05, 6.0, size=400)
    r = form.predict(d, Coefficients(ALPHA, BETA, intercept)) + rng.normal(0.0, 0.01, size=d.size)
    result = fit(d, r, form, offset, r0=r0)
    assert result.alpha == pytest.approx(ALPHA, abs=0.02)
    assert result.beta == pytest.approx(BETA, abs=0.01)
    assert result.intercept == pytest.approx(intercept, abs=0.01)
    assert result.rmse == pytest.approx(0.01, rel=0.15)  # the residual is the planted noise


def test_log_form_fits_log_generated_data_better_than_the_quadratic_form() -> None:
    rng = np.random.default_rng(1)
    d = np.sort(rng.uniform(0.1, 8.0, size=60))
    r = R0 + LogForm().predict(d, (0.5, 0.25)) + rng.normal(0.0, 0.005, size=d.size)
    for offset, r0 in ((Gain(), R0), (Intercept(), None)):
        log_fit = fit(d, r, LogForm(), offset, r0=r0)
        quad_fit = fit(d, r, QuadraticForm(), offset, r0=r0)
        assert log_fit.rmse < 0.5 * quad_fit.rmse


@pytest.mark.parametrize("form", [LogForm(), QuadraticForm()], ids=repr)
@pytest.mark.parametrize(("alpha", "beta", "c"), [(0.9, 0.35, 0.0), (0.2, 0.5, 0.3), (1.5, 0.1, -0.1)])
def test_peak_formula_matches_a_dense_grid_argmax(form: Form, alpha: float, beta: float, c: float) -> None:
    d_star, value = form.peak((alpha, beta, c))
    grid = np.linspace(0.0, 3.0 * d_star, 300_001)
    curve = form.predict(grid, (alpha, beta, c))
    assert d_star == pytest.approx(grid[np.argmax(curve)], abs=2 * (grid[1] - grid[0]))
    assert value == pytest.approx(curve.max(), abs=1e-9)


def test_peak_edge_cases() -> None:
    for form in (LogForm(), QuadraticForm()):
        assert form.peak((0.5, -0.1)) == (math.inf, math.inf)  # curve never turns down
        assert form.peak((0.5, 0.0)) == (math.inf, math.inf)
        assert form.peak((-0.5, 0.0, 0.3)) == (0.0, 0.3)  # never rises
        assert all(math.isnan(x) for x in form.peak((math.nan, 0.1)))
    # Quadratic vertex at d < 0: on d >= 0 the best point is d = 0.
    assert QuadraticForm().peak((-0.2, 0.5, 0.4)) == (0.0, 0.4)
    # Log form: an interior maximum exists for every alpha when beta > 0.
    d_star, value = LogForm().peak((-1.0, 0.5))
    assert d_star == pytest.approx(math.exp(-3.0))
    assert value == pytest.approx(0.5 * math.exp(-3.0))
    assert LogForm().peak((1000.0, 0.1)) == (math.inf, math.inf)  # exp would overflow


def test_fit_rejects_bad_input() -> None:
    with pytest.raises(InputError, match="sqrt"):
        fit([0.1, -0.2, 0.3], [0.5, 0.5, 0.5], LogForm(), Raw())
    with pytest.raises(InputError, match="same shape"):
        fit([0.1, 0.2], [0.5], LogForm(), Raw())
    with pytest.raises(InputError, match="r0"):
        fit([0.1, 0.2, 0.3], [0.5, 0.6, 0.5], LogForm(), Gain())
    with pytest.raises(FitError):
        fit([0.1, 0.2], [0.5, 0.6], LogForm(), Intercept())  # 3 coefficients, 2 points
    with pytest.raises(FitError):
        fit([0.4, 0.4, 0.4], [0.5, 0.6, 0.7], QuadraticForm(), Raw())  # one distinct d cannot fix two coefficients


def _frame() -> tuple[pd.DataFrame, dict[tuple[str, str], tuple[float, float]], dict[str, float]]:
    """Checkpoints for 2 objectives x 2 models, each group with its own planted (alpha, beta) around its SFT rate."""
    planted = {
        ("DPO", "1b"): (0.8, 0.4),
        ("DPO", "2.8b"): (0.6, 0.2),
        ("IPO", "1b"): (0.5, 0.3),
        ("IPO", "2.8b"): (0.4, 0.1),
    }
    sft = {"1b": 0.25, "2.8b": 0.35}
    rows = []
    for (objective, model), (alpha, beta) in planted.items():
        for d in np.linspace(0.2, 4.0, 8):
            win = sft[model] + float(LogForm().predict(d, (alpha, beta))[0])
            rows.append({"objective": objective, "model": model, "beta_daa": 0.1, "sqrt_kl": d, "win_rate": win})
    rows.append({"objective": "DPO", "model": "1b", "beta_daa": 0.1, "sqrt_kl": np.nan, "win_rate": 0.9})
    return pd.DataFrame(rows), planted, sft


def test_fit_table_one_row_per_group_form_and_offset() -> None:
    df, planted, sft = _frame()
    table = fit_table(df, sft_win_rate=sft)
    assert list(table.columns) == [
        "objective",
        "model",
        "form",
        "offset",
        "alpha",
        "beta",
        "intercept",
        "rmse",
        "n",
        "d_star",
        "peak_win_rate",
    ]
    assert len(table) == 4 * 2 * 3
    assert (table["n"] == 8).all()  # the NaN row was dropped
    log_gain = table[(table["form"] == "log") & (table["offset"] == "gain")].set_index(["objective", "model"])
    for key, (alpha, beta) in planted.items():
        assert log_gain.loc[key, ["alpha", "beta"]].tolist() == pytest.approx([alpha, beta], abs=1e-9)
        assert log_gain.loc[key, "intercept"] == pytest.approx(sft[key[1]])
        d_star = math.exp(alpha / beta - 1)
        assert log_gain.loc[key, "d_star"] == pytest.approx(d_star)
        assert log_gain.loc[key, "peak_win_rate"] == pytest.approx(sft[key[1]] + beta * d_star)
    log_intercept = table[(table["form"] == "log") & (table["offset"] == "intercept")]
    assert log_intercept["rmse"].max() < 1e-9
    assert (table[table["form"] == "quadratic"]["rmse"] > 1e-4).all()
    # A Series indexed by model works like the dict.
    assert fit_table(df, sft_win_rate=pd.Series(sft)).equals(table)


def test_fit_table_options() -> None:
    df, _, sft = _frame()
    # Without SFT win rates the gain rows are left out.
    no_gain = fit_table(df)
    assert set(no_gain["offset"]) == {"raw", "intercept"}
    assert len(no_gain) == 4 * 2 * 2
    # Other groupings, one scalar r0, a chosen subset of forms and offsets.
    by_objective = fit_table(df, group_cols=("objective",), forms=[LogForm()], offsets=[Gain()], sft_win_rate=0.3)
    assert by_objective["objective"].tolist() == ["DPO", "IPO"]
    assert (by_objective["n"] == 16).all()
    single = fit_table(df, group_cols=(), offsets=[Intercept()])
    assert len(single) == 2 and (single["n"] == 32).all()
    # A group too small to fit still gets a row, with NaN coefficients.
    tiny = pd.concat([df, pd.DataFrame([{"objective": "SLiC", "model": "1b", "sqrt_kl": 1.0, "win_rate": 0.4}])])
    slic = fit_table(tiny, sft_win_rate=sft).query("objective == 'SLiC'")
    assert len(slic) == 6 and slic["alpha"].isna().all() and (slic["n"] == 1).all()
    with pytest.raises(InputError, match="no entry for model"):
        fit_table(df, sft_win_rate={"1b": 0.25})
    with pytest.raises(InputError, match="group columns"):
        fit_table(df, group_cols=("objective",), sft_win_rate=sft)
    with pytest.raises(InputError, match="no column"):
        fit_table(df, d_col="kl")
