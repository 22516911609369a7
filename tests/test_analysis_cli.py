"""End-to-end tests of `lit-daa analyze` on planted results tables: one findings table, its detail tables, the fitted
scaling laws, the figures and one report that opens with the table."""

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
from lit_daa.analysis.figures import LAB_FIGURES

# Different planted log-form coefficients per cell, so a fit that mixed cells up would not recover them.
PLANTED = {
    ("DPO", "tiny"): (0.12, 0.08),
    ("DPO", "small"): (0.11, 0.07),
    ("IPO", "tiny"): (0.10, 0.05),
    ("IPO", "small"): (0.09, 0.05),
    ("SLiC", "tiny"): (0.14, 0.09),
    ("SLiC", "small"): (0.13, 0.085),
}


@pytest.fixture(scope="module")
def hump_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One full `analyze` run (figures included) on a planted hump with 3 seeds; (output folder, stdout)."""
    folder = tmp_path_factory.mktemp("hump")
    df = planted_results(objectives=("DPO", "IPO", "SLiC"), coefficients=PLANTED, noise=0.003, seed=1, seeds=3)
    df.to_csv(folder / "results.csv", index=False)
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main([str(folder / "results.csv")]) == 0
    return folder / "analysis", buffer.getvalue()


def test_default_out_folder_holds_tables_figures_and_report(hump_run: tuple[Path, str]) -> None:
    out, _ = hump_run
    for name in ("findings.csv", "humps.csv", "fits.csv", "fit_form.csv", "intra_epoch.csv", "scale.csv"):
        assert (out / name).is_file(), name
    for name in ("lab_winrate_vs_sqrtkl.png", "lab_proxy_vs_gold.png"):
        assert (out / name).stat().st_size > 1000, name
    assert (out / "report.md").is_file()


def test_report_references_every_figure_that_exists_and_only_those(hump_run: tuple[Path, str]) -> None:
    out, _ = hump_run
    report = (out / "report.md").read_text()
    referenced = set(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report))
    written = {path.name for path in out.glob("*.png")}
    assert referenced == written and written <= set(LAB_FIGURES)


def test_fits_recover_the_planted_coefficients(hump_run: tuple[Path, str]) -> None:
    out, _ = hump_run
    fits = pd.read_csv(out / "fits.csv")
    for (objective, model), (alpha, beta) in PLANTED.items():
        row = fits[(fits.objective == objective) & (fits.model == model) & (fits.form == "log")].iloc[0]
        assert row["offset"] == "gain"
        assert (row["alpha"], row["beta"]) == pytest.approx((alpha, beta), abs=0.01)


def test_report_opens_with_the_findings_table_and_says_what_holds(hump_run: tuple[Path, str]) -> None:
    out, stdout = hump_run
    report = (out / "report.md").read_text()
    first_section = report.split("\n## ")[1]
    assert first_section.startswith("The paper's findings, measured")
    assert "| finding | paper | here | verdict |" in first_section
    assert "Seeds per main-grid cell: 3 to 3" in first_section and "Student t" in first_section
    assert "Plainly, this world:" in first_section and "Reproduced (holds): 1 (hump)" in first_section
    findings = pd.read_csv(out / "findings.csv")
    assert findings.loc[findings["rule"] == "1", "verdict"].item() == "holds"
    assert "verdict" in stdout


def test_one_definition_per_quantity(hump_run: tuple[Path, str]) -> None:
    """The drop in the findings row, the hump table and the report are the same numbers."""
    out, _ = hump_run
    humps = pd.read_csv(out / "humps.csv")
    row = pd.read_csv(out / "findings.csv").set_index("rule").loc["1", "here"]
    assert f"{100 * humps['drop'].min():.1f} to {100 * humps['drop'].max():.1f} pp" in row
    assert row in (out / "report.md").read_text()


def test_optional_columns_missing_leave_their_findings_unmeasured(tmp_path: Path) -> None:
    df = planted_results(seeds=2).drop(
        columns=["length_r2", "val_accuracy", "val_loss", "chosen_logratio", "forward_kl"]
    )
    df.to_csv(tmp_path / "results.csv", index=False)
    assert main([str(tmp_path / "results.csv"), "--out", str(tmp_path / "o")]) == 0
    findings = pd.read_csv(tmp_path / "o" / "findings.csv").set_index("rule")
    assert findings.loc["6", "verdict"] == "not measured" and findings.loc["7", "verdict"] == "not measured"
    assert not (tmp_path / "o" / "eq7.csv").exists() and not (tmp_path / "o" / "lab_proxy_vs_gold.png").exists()


def test_one_seed_gives_no_interval_and_no_verdict_it_cannot_earn(tmp_path: Path) -> None:
    planted_results().to_csv(tmp_path / "results.csv", index=False)
    assert main([str(tmp_path / "results.csv"), "--no-figures"]) == 0
    humps = pd.read_csv(tmp_path / "analysis" / "humps.csv")
    assert humps["drop_low"].isna().all() and set(humps["reading"]) == {"undecided"}
    row = pd.read_csv(tmp_path / "analysis" / "findings.csv").set_index("rule").loc["1"]
    assert row["verdict"] == "not measured" and row["here"].startswith("one seed per cell: no interval")


def test_bad_input_exits_with_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    planted_results().drop(columns=["win_rate"]).to_csv(tmp_path / "results.csv", index=False)
    assert main([str(tmp_path / "results.csv")]) == 2
    assert "win_rate" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.csv")]) == 2
    planted_results().to_csv(tmp_path / "ok.csv", index=False)
    assert main([str(tmp_path / "ok.csv"), "--best-of-n", str(tmp_path / "none.csv")]) == 2
    assert "--best-of-n" in capsys.readouterr().err
    pd.DataFrame({"model": ["tiny"], "n": [1]}).to_csv(tmp_path / "bon.csv", index=False)
    assert main([str(tmp_path / "ok.csv"), "--best-of-n", str(tmp_path / "bon.csv")]) == 2
    assert "no column(s)" in capsys.readouterr().err
    assert np.isfinite(pd.read_csv(tmp_path / "ok.csv")["win_rate"]).all()
