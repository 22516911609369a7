"""Unit tests of the analysis pieces: table preparation, peaks, intra-epoch, correlations, formatting."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from plugins.planted import planted_results

from lit_daa.analysis.correlations import correlate, correlation_table
from lit_daa.analysis.headline import peak_position
from lit_daa.analysis.intra_epoch import run_peaks, smallest_beta_peaks
from lit_daa.analysis.markdown import fmt, markdown_table
from lit_daa.analysis.results import prepare_results
from lit_daa.analysis.study import AnalysisOptions, run_analysis
from lit_daa.errors import InputError


def _points(d: list[float], r: list[float], objective: str = "DPO") -> pd.DataFrame:
    n = len(d)
    return pd.DataFrame(
        {
            "objective": [objective] * n,
            "model": ["m"] * n,
            "beta": [0.1] * n,
            "run_id": [f"r{i}" for i in range(n)],
            "epoch_fraction": [1.0] * n,
            "sqrt_kl": d,
            "win_rate": r,
        }
    )


def test_peak_position_interior_and_drop() -> None:
    row = peak_position(_points([0.0, 1.0, 2.0, 3.0, 4.0], [0.3, 0.5, 0.6, 0.4, 0.2]), top_k=2)
    assert row["interior"] and row["best_sqrt_kl"] == 2.0
    assert row["top_k_mean_win_rate"] == pytest.approx(0.3)
    assert row["top_k_drop_pp"] == pytest.approx(30.0)
    assert row["highest_drop_pp"] == pytest.approx(40.0)


@pytest.mark.parametrize(
    ("r", "interior"),
    [([0.2, 0.3, 0.4, 0.5], False), ([0.5, 0.4, 0.3, 0.2], False), ([0.2, 0.5, 0.5, 0.5], True)],
)
def test_peak_position_edges_and_ties(r: list[float], interior: bool) -> None:
    # On a tie the lowest-KL maximum is the peak, so a plateau that starts inside the range counts as interior.
    assert peak_position(_points([0.0, 1.0, 2.0, 3.0], r))["interior"] is interior


def test_peak_position_never_counts_the_reference_as_a_high_kl_checkpoint() -> None:
    points = _points([0.0, 1.0, 2.0], [0.4, 0.3, 0.2])
    points.loc[0, "objective"] = "SFT"
    row = peak_position(points, top_k=5)
    assert row["best_is_sft"] and row["top_k"] == 2
    assert row["top_k_mean_win_rate"] == pytest.approx(0.25)


def test_run_peaks_earliest_best_and_unfinished_runs() -> None:
    df = pd.DataFrame(
        {
            "objective": "DPO",
            "model": "m",
            "beta": [0.1] * 3 + [0.5] * 2,
            "run_id": ["a"] * 3 + ["b"] * 2,
            "epoch_fraction": [0.25, 0.5, 1.0, 0.25, 0.5],
            "is_final": [False, False, True, False, False],
            "sqrt_kl": [1.0, 2.0, 3.0, 0.5, 0.8],
            "win_rate": [0.5, 0.5, 0.4, 0.3, 0.35],
        }
    )
    peaks = run_peaks(df).set_index("run_id")
    assert peaks.loc["a", "best_epoch_fraction"] == 0.25 and peaks.loc["a", "best_before_end"]
    assert peaks.loc["a", "drop_pp"] == pytest.approx(10.0) and math.isnan(peaks.loc["a", "drop_z"])
    assert not peaks.loc["b", "has_final"] and not peaks.loc["b", "best_before_end"]
    assert smallest_beta_peaks(peaks.reset_index())["run_id"].tolist() == ["a"]


def test_prepare_results_coerces_and_splits() -> None:
    df = planted_results()
    df["is_final"] = df["is_final"].map({True: "True", False: "False"})
    df = df.drop(columns=["sqrt_kl"])
    df.loc[5, "win_rate"] = np.nan
    results = prepare_results(df)
    assert results.models == ["tiny", "small"] and results.objectives == ["DPO", "IPO"]
    assert results.policy["is_final"].dtype == bool and results.policy["is_final"].sum() == 20
    assert np.allclose(results.policy["sqrt_kl"] ** 2, results.policy["kl"])
    assert results.sft_win_rate == {"tiny": 0.35, "small": 0.35}
    assert any("without a win rate" in note for note in results.notes)
    with pytest.raises(InputError, match="trained-run"):
        prepare_results(df[df["objective"] == "SFT"])


def test_correlate_matches_numpy_and_handles_ties_and_constants() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=50)
    y = 0.5 * x + rng.normal(size=50)
    corr = correlate(x, y)
    assert corr.n == 50 and corr.pearson_r == pytest.approx(np.corrcoef(x, y)[0, 1])
    # r = 0.327 at n = 50: the exact t-test gives p = 0.0205; the Fisher z approximation must be close.
    assert corr.pearson_p == pytest.approx(0.0205, abs=0.002)
    ties = correlate([1, 2, 2, 3], [1, 2, 3, 4])
    assert ties.spearman_rho == pytest.approx(np.corrcoef([1, 2.5, 2.5, 4], [1, 2, 3, 4])[0, 1])
    assert math.isnan(correlate([1, 1, 1, 1], [1, 2, 3, 4]).pearson_r)
    assert correlate([1.0, np.nan, 3.0], [1.0, 2.0, 3.0]).n == 2


def test_correlation_table_skips_missing_columns() -> None:
    df = planted_results()
    table = correlation_table(df[df["objective"] != "SFT"], ["val_accuracy", "nope"], group_cols=("model",))
    assert table["x"].unique().tolist() == ["val_accuracy"] and set(table["model"]) == {"tiny", "small"}


def test_run_analysis_options_select_offsets_and_sft_point() -> None:
    from lit_daa.analysis.fits import OFFSETS

    results = prepare_results(planted_results(coefficients=(0.12, 0.08)))
    analysis = run_analysis(results, AnalysisOptions(offsets=(OFFSETS["raw"],), include_sft_point_in_fits=True))
    assert set(analysis.fits["offset"]) == {"raw"}
    assert set(analysis.curve_fits["offset"]) == {"gain"}  # the curve offset is fitted even when not reported
    assert (analysis.fits["n"] == 21).all()  # 20 checkpoints and the SFT point
    assert np.allclose(analysis.curve_fits[["alpha", "beta"]], [0.12, 0.08], atol=1e-9)


def test_fmt_and_markdown_table() -> None:
    assert [fmt(v) for v in (0.123456, float("nan"), float("inf"), True, 3, "x")] == [
        "0.123",
        "-",
        "inf",
        "yes",
        "3",
        "x",
    ]
    table = markdown_table(pd.DataFrame({"a": [1.0, 2.5], "b": ["x", "y"]}), headers={"a": "A"})
    assert table.splitlines() == ["| A | b |", "|---|---|", "| 1 | x |", "| 2.5 | y |"]
