"""End-to-end tests of `lit-daa analyze` on planted results tables: outputs, recovered fits, measured headline."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from plugins.planted import planted_results

from lit_daa.analysis.analyze import main
from lit_daa.analysis.figures import FIGURES

# Different planted log-form coefficients per cell, so a fit that mixed cells up would not recover them.
PLANTED = {
    ("DPO", "tiny"): (0.12, 0.08),
    ("DPO", "small"): (0.11, 0.07),
    ("IPO", "tiny"): (0.10, 0.05),
    ("IPO", "small"): (0.09, 0.05),
    ("SLiC", "tiny"): (0.14, 0.09),
    ("SLiC", "small"): (0.13, 0.085),
}


NO_BOOT = ["--replicates", "0"]  # no findings table: these tests check the other outputs, and quickly


@pytest.fixture(scope="module")
def hump_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One full `analyze` run (figures included) on a planted hump; (output folder, stdout)."""
    folder = tmp_path_factory.mktemp("hump")
    df = planted_results(objectives=("DPO", "IPO", "SLiC"), coefficients=PLANTED, noise=0.003, seed=1)
    df.to_csv(folder / "results.csv", index=False)
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main([str(folder / "results.csv"), "--replicates", "30"]) == 0
    return folder / "analysis", buffer.getvalue()


def test_default_out_folder_holds_tables_figures_and_report(hump_run: tuple[Path, str]) -> None:
    out, _ = hump_run
    for name in ("fits.csv", "fits_wide.csv", "fit_comparison.csv", "run_peaks.csv", "peaks_by_objective.csv"):
        assert (out / name).is_file(), name
    for spec in FIGURES:
        assert (out / spec.filename).stat().st_size > 1000, spec.filename
    assert (out / "report.md").is_file() and (out / "headline.md").is_file()


def test_report_references_every_figure_that_exists_and_only_those(hump_run: tuple[Path, str]) -> None:
    out, _ = hump_run
    report = (out / "report.md").read_text()
    referenced = set(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report))
    written = {path.name for path in out.glob("*.png")}
    assert referenced == written
    assert "all checkpoints of the cell, intra-epoch and end of epoch" in report


def test_fits_recover_the_planted_coefficients(hump_run: tuple[Path, str]) -> None:
    out, _ = hump_run
    fits = pd.read_csv(out / "fits.csv")
    log_gain = fits[(fits["form"] == "log") & (fits["offset"] == "gain")].set_index(["objective", "model"])
    assert len(log_gain) == len(PLANTED)
    for cell, (alpha, beta) in PLANTED.items():
        assert log_gain.loc[cell, "alpha"] == pytest.approx(alpha, abs=0.01)
        assert log_gain.loc[cell, "beta"] == pytest.approx(beta, abs=0.01)
        assert log_gain.loc[cell, "intercept"] == pytest.approx(0.35)
        assert log_gain.loc[cell, "d_star"] == pytest.approx(np.exp(alpha / beta - 1.0), rel=0.15)
    comparison = pd.read_csv(out / "fit_comparison.csv").set_index("offset")
    assert comparison.loc["gain", "log_better"] == comparison.loc["gain", "cells"] == len(PLANTED)


def test_headline_reports_interior_peaks_and_early_best_at_small_beta(hump_run: tuple[Path, str]) -> None:
    out, stdout = hump_run
    peaks = pd.read_csv(out / "peaks_by_objective.csv")
    assert peaks["interior"].all()
    assert (peaks["top_k_drop_pp"] > 5).all()
    smallest = pd.read_csv(out / "smallest_beta.csv")
    assert smallest["best_before_end"].all() and (smallest["beta"] == 0.01).all()
    for objective in ("DPO", "IPO", "SLiC"):
        assert f"**{objective}**" in stdout
    assert stdout.count("**interior**") == 3 and "not interior" not in stdout
    assert "in **6/6** (objective, size) cells" in stdout
    assert (out / "headline.md").read_text().strip() in (out / "report.md").read_text()


def test_top_k_drop_is_the_mean_of_the_highest_kl_checkpoints(tmp_path: Path) -> None:
    df = planted_results(noise=0.003, seed=2)
    df.to_csv(tmp_path / "results.csv", index=False)
    assert (
        main(
            [
                str(tmp_path / "results.csv"),
                "--out",
                str(tmp_path / "a"),
                "--top-k",
                "4",
                "--no-figures",
                "--replicates",
                "0",
            ]
        )
        == 0
    )
    peaks = pd.read_csv(tmp_path / "a" / "peaks_by_objective.csv").set_index("objective")
    for objective, group in df[df["objective"] != "SFT"].groupby("objective"):
        best = max(group["win_rate"].max(), 0.35)
        top = group.sort_values("sqrt_kl", ascending=False).head(4)
        assert peaks.loc[objective, "top_k"] == 4
        assert peaks.loc[objective, "top_k_mean_win_rate"] == pytest.approx(top["win_rate"].mean())
        assert peaks.loc[objective, "top_k_drop_pp"] == pytest.approx(100 * (best - top["win_rate"].mean()))
        assert peaks.loc[objective, "highest_win_rate"] == pytest.approx(top["win_rate"].iloc[0])


def test_a_rising_curve_is_reported_not_interior(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # beta = 0: R = R0 + alpha d keeps rising, so the best point is the highest-KL one and nothing peaks early.
    planted_results(coefficients=(0.05, 0.0)).to_parquet(tmp_path / "results.parquet")
    assert main([str(tmp_path), "--no-figures", *NO_BOOT]) == 0
    stdout = capsys.readouterr().out
    out = tmp_path / "analysis"
    peaks = pd.read_csv(out / "peaks_by_objective.csv")
    assert not peaks["interior"].any()
    assert (peaks["best_sqrt_kl"] == peaks["max_sqrt_kl"]).all()
    assert np.allclose(peaks["highest_drop_pp"], 0.0)
    assert stdout.count("**not interior**") == 2
    assert not pd.read_csv(out / "smallest_beta.csv")["best_before_end"].any()
    assert "in **0/4** (objective, size) cells" in stdout
    # Both forms fit a straight line exactly: a tie, which must not count for the log form.
    comparison = pd.read_csv(out / "fit_comparison.csv").set_index("offset")
    assert comparison.loc["gain", "log_better"] == 0 and comparison.loc["gain", "median_rmse_ratio"] == 1.0
    assert not list(out.glob("*.png")) and "![" not in (out / "report.md").read_text()


def test_a_falling_curve_puts_the_peak_at_the_sft_point(tmp_path: Path) -> None:
    planted_results(coefficients=(-0.02, 0.0)).to_csv(tmp_path / "results.csv", index=False)
    assert main([str(tmp_path / "results.csv"), "--no-figures", *NO_BOOT]) == 0
    peaks = pd.read_csv(tmp_path / "analysis" / "peaks_by_objective.csv")
    assert peaks["best_is_sft"].all() and not peaks["interior"].any()
    # Leaving the SFT point out, the lowest-KL checkpoint is the best: still not interior.
    assert (
        main(
            [
                str(tmp_path / "results.csv"),
                "--no-figures",
                "--peaks-without-sft",
                "--out",
                str(tmp_path / "b"),
                "--replicates",
                "0",
            ]
        )
        == 0
    )
    peaks = pd.read_csv(tmp_path / "b" / "peaks_by_objective.csv")
    assert not peaks["best_is_sft"].any() and not peaks["interior"].any()


def test_optional_columns_missing_skips_their_figures(tmp_path: Path) -> None:
    df = planted_results().drop(columns=["length_r2", "val_accuracy", "val_loss", "chosen_logratio", "forward_kl"])
    df.to_csv(tmp_path / "results.csv", index=False)
    assert main([str(tmp_path / "results.csv"), "--out", str(tmp_path / "o"), *NO_BOOT]) == 0
    out = tmp_path / "o"
    assert {p.name for p in out.glob("*.png")} == {"fig1_winrate_vs_sqrtkl.png", "fig2_intra_epoch.png"}
    report = (out / "report.md").read_text()
    assert "fig3_length_r2.png" not in report and "no length_r2 values" in report
    assert not (out / "eq7.csv").exists()


def test_sizes_without_sft_fall_back_to_the_intercept_offset(tmp_path: Path) -> None:
    df = planted_results(coefficients=(0.12, 0.08))
    df[df["objective"] != "SFT"].to_csv(tmp_path / "results.csv", index=False)
    assert main([str(tmp_path / "results.csv"), "--no-figures", *NO_BOOT]) == 0
    fits = pd.read_csv(tmp_path / "analysis" / "fits.csv")
    assert "gain" not in set(fits["offset"])
    log_intercept = fits[(fits["form"] == "log") & (fits["offset"] == "intercept")]
    assert np.allclose(log_intercept[["alpha", "beta", "intercept"]], [0.12, 0.08, 0.35], atol=1e-6)
    assert "no SFT row" in (tmp_path / "analysis" / "report.md").read_text()


def test_bad_input_exits_with_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    planted_results().drop(columns=["win_rate"]).to_csv(tmp_path / "results.csv", index=False)
    assert main([str(tmp_path / "results.csv")]) == 2
    assert "win_rate" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.csv")]) == 2
    assert main([str(tmp_path / "results.csv"), "--top-k", "0"]) == 2


def test_report_opens_with_the_findings_table(hump_run: tuple[Path, str]) -> None:
    out, stdout = hump_run
    report = (out / "report.md").read_text()
    first_section = report.split("\n## ")[1]
    assert first_section.startswith("The paper's findings, measured")
    assert "| finding | paper | here | verdict |" in first_section
    findings = pd.read_csv(out / "findings.csv")
    assert findings.loc[findings["rule"] == "1", "verdict"].item() == "holds"
    assert "verdict" in stdout and (out / "lab_winrate_vs_sqrtkl.png").is_file()
