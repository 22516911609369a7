"""The committed lab (docs/lab/): its results table, recomputed by tests/lab_check.py with code that shares nothing
with lit_daa.analysis, agrees with the report's hump and fit tables."""

from __future__ import annotations

from pathlib import Path

import pytest
from lab_check import check

LAB = Path(__file__).resolve().parents[1] / "docs" / "lab"


@pytest.mark.skipif(not (LAB / "results.csv").is_file(), reason="no committed lab results")
def test_independent_check_agrees_with_the_committed_report() -> None:
    assert check(LAB) == []


def test_the_check_catches_a_report_that_disagrees(tmp_path: Path) -> None:
    rows = [
        "run_id,objective,variant,beta,seed,model,epoch_fraction,is_final,kl,win_rate",
        "m-sft,SFT,,,0,m,0,False,0,0.4",
    ]
    for seed in (0, 1):
        for beta, kls, wins in ((0.1, (1, 4), (0.6, 0.5)), (1.0, (0.25, 1), (0.5, 0.55))):
            for fraction, kl, win in zip((0.5, 1.0), kls, wins, strict=True):
                rows.append(f"r,DPO,,{beta},{seed},m,{fraction},{fraction == 1.0},{kl},{win + 0.01 * seed}")
    (tmp_path / "results.csv").write_text("\n".join(rows) + "\n")
    # each seed's peak, picked on the other seed, is at d 1 (beta 0.1, half the epoch); the one point beyond it is
    # d 2, 0.1 lower in both seeds -> cross-fitted drop 0.1 with a zero-width interval
    (tmp_path / "humps.csv").write_text("objective,model,drop,drop_low\nDPO,m,0.1,0.1\n")
    (tmp_path / "fit_form.csv").write_text("objective,model,rmse_ratio\nDPO,m,0.5\n")
    problems = check(tmp_path)
    assert any("RMSE ratio" in p for p in problems)  # 0.5 was made up
    assert not any("drop" in p for p in problems)
