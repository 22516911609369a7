"""The findings table on planted results: verdicts follow the planted truth, intervals behave, the report opens
with the table, and the bootstrap keeps each run's trajectory together."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from plugins.planted import planted_results

from lit_daa.analysis.bootstrap import Bootstrap
from lit_daa.analysis.findings import FAILS, HOLDS, UNTESTED, FindingsBuilder
from lit_daa.analysis.results import prepare_results
from lit_daa.analysis.statistics import hump, intra_epoch_drop, rmse_ratio

BETAS = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)


def _findings(**planted: object):
    results = prepare_results(planted_results(objectives=("DPO", "IPO", "SLiC"), seeds=3, betas=BETAS, **planted))
    return results, FindingsBuilder(results, Bootstrap(results, replicates=60)).build()


def test_a_planted_hump_holds_and_its_drop_matches_a_hand_computation() -> None:
    results, findings = _findings(coefficients=(0.12, 0.08), noise=0.004, seed=3)
    verdicts = dict(zip(findings.table["rule"], findings.table["verdict"], strict=True))
    assert verdicts["1"] == HOLDS and verdicts["fit"] == HOLDS and verdicts["2"] == HOLDS
    assert verdicts["8"] == UNTESTED  # no toy summary given
    humps = findings.details["humps"]
    assert humps["hump"].all() and (humps["drop_low"] > 0).all()
    # by hand for one cell: seed means per (beta, fraction), the SFT point, the peak and the 3 highest-KL points
    policy = results.policy
    cell = policy[(policy.objective == "DPO") & (policy.model == "tiny")]
    means = cell.groupby(["beta", "epoch_fraction"])[["sqrt_kl", "win_rate"]].mean()
    top = means.sort_values("sqrt_kl", ascending=False).head(3)["win_rate"].mean()
    peak = max(means["win_rate"].max(), results.sft_win_rate["tiny"])
    assert hump(results, "DPO", "tiny")["drop"] == pytest.approx(peak - top)
    # the log form was planted: its RMSE is the noise, the quadratic's is larger
    assert rmse_ratio(results, "DPO", "tiny") < 0.8


def test_a_rising_curve_fails_the_hump() -> None:
    _, findings = _findings(coefficients=(0.08, 0.0), noise=0.002, seed=4)  # beta 0: win rate only rises with d
    verdicts = dict(zip(findings.table["rule"], findings.table["verdict"], strict=True))
    assert verdicts["1"] == FAILS
    assert not findings.details["humps"]["hump"].any()


def test_intervals_are_zero_width_without_noise_and_seeds_that_agree() -> None:
    results = prepare_results(planted_results(seeds=3, noise=0.0))
    results.policy["win_rate_stderr"] = 0.0
    results.reference["win_rate_stderr"] = 0.0
    interval = Bootstrap(results, replicates=20).interval(lambda r: hump(r, "DPO", "tiny")["drop"])
    assert interval.low == pytest.approx(interval.estimate) and interval.high == pytest.approx(interval.estimate)


def test_bootstrap_resamples_whole_runs_by_seed() -> None:
    results = prepare_results(planted_results(seeds=3, noise=0.01, seed=5))
    replica = Bootstrap(results, replicates=1, seed=1).replicas[0]
    assert len(replica.policy) == len(results.policy)
    for _, group in replica.policy.groupby(["objective", "model", "seed"]):
        assert group["beta"].nunique() == len(results.policy["beta"].unique())  # every beta of the drawn seed
    # each drawn seed carries one original seed's trajectory (win rates up to the binomial jitter)
    original = results.policy.set_index(["objective", "model", "beta", "epoch_fraction", "seed"])["sqrt_kl"]
    drawn = replica.policy.set_index(["objective", "model", "beta", "epoch_fraction"])["sqrt_kl"]
    assert np.isin(drawn.to_numpy(), original.to_numpy()).all()


def test_intra_epoch_drop_by_hand() -> None:
    frame = planted_results(objectives=("DPO",), models={"tiny": 1}, betas=(0.01,), seeds=2, noise=0.0)
    frame.loc[(frame.objective == "DPO") & (frame.epoch_fraction == 0.5), "win_rate"] = 0.9
    results = prepare_results(frame)
    drop = intra_epoch_drop(results, "DPO", "tiny", 0.01)
    end = frame[(frame.objective == "DPO") & (frame.epoch_fraction == 1.0)]["win_rate"].mean()
    assert drop["best_fraction"] == 0.5 and drop["drop"] == pytest.approx(0.9 - end)


def test_toy_summary_decides_finding_eight() -> None:
    results = prepare_results(planted_results(seeds=2))
    toy = pd.DataFrame({"in_data_change": [-0.3, -0.2, -0.4, 0.01], "in_data_start": [0.9] * 4})
    findings = FindingsBuilder(results, Bootstrap(results, replicates=10), toy).build()
    row = findings.table[findings.table["rule"] == "8"].iloc[0]
    assert row["verdict"] == HOLDS and "3/4 runs" in row["here"]
    assert not math.isnan(float(findings.details["humps"]["drop"].iloc[0]))
