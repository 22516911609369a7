"""Parts of the analysis: reading a results table (SFT rows per seed included) and Markdown formatting."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from plugins.planted import planted_results

from lit_daa.analysis import statistics as st
from lit_daa.analysis.markdown import fmt, markdown_table
from lit_daa.analysis.results import prepare_results
from lit_daa.errors import InputError


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


def test_sft_rows_per_seed_give_each_seed_its_own_d0_point() -> None:
    df = planted_results(seeds=2)
    sft = df[df["objective"] == "SFT"]
    second = sft.assign(seed=1, win_rate=0.45, run_id=sft["run_id"] + "-s1")
    df = pd.concat([df[df["objective"] != "SFT"], sft.assign(run_id=sft["run_id"] + "-s0"), second])
    results = prepare_results(df)
    assert results.sft_by_seed["tiny"].to_dict() == {0: 0.35, 1: 0.45}
    assert st.cell(results, "DPO", "tiny").sft.tolist() == [0.35, 0.45]
    assert not any("averaged" in note for note in results.notes)
    shared = prepare_results(planted_results(seeds=2))  # one SFT row: every seed starts from it
    assert st.cell(shared, "DPO", "tiny").sft.tolist() == [0.35, 0.35]


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
