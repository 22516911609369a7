"""The findings table on planted results: each rule holds, is partial and fails where the planted truth says so,
the cross-fitted statistics match hand computations, and the report opens with the table."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from plugins.planted import planted_results

from lit_daa.analysis import statistics as st
from lit_daa.analysis.figures import draw_lab_figures
from lit_daa.analysis.findings import FindingsBuilder
from lit_daa.analysis.intervals import FAILS, HOLDS, PARTIAL, UNTESTED
from lit_daa.analysis.report import build_report
from lit_daa.analysis.results import prepare_results

BETAS = (0.01, 0.03, 0.1, 0.3, 1.0)  # d at most 7: no win rate clipped at 0 or 1
FRACTIONS = (0.1, 0.25, 0.5, 0.75, 1.0)


def _results(**planted: object):
    options = {"objectives": ("DPO", "IPO", "SLiC"), "seeds": 4, "betas": BETAS, "epoch_fractions": FRACTIONS}
    return prepare_results(planted_results(**(options | planted)))


def _verdicts(results, **extra: object) -> dict[str, str]:
    table = FindingsBuilder(results, **extra).build().table
    return dict(zip(table["rule"], table["verdict"], strict=True))


def test_cross_fitted_hump_by_hand() -> None:
    """Two seeds, three points: each seed's peak and top points are chosen on the other seed's curve."""
    frame = planted_results(
        objectives=("DPO",), models={"tiny": 1}, betas=(0.1,), epoch_fractions=(0.3, 0.6, 1.0), seeds=2
    )
    policy = frame["objective"] == "DPO"
    frame.loc[policy, "sqrt_kl"] = [1.0, 2.0, 3.0, 1.0, 2.0, 3.0]
    frame.loc[policy, "kl"] = frame.loc[policy, "sqrt_kl"] ** 2
    frame.loc[policy, "win_rate"] = [0.6, 0.7, 0.5, 0.8, 0.7, 0.4]  # seed 0 peaks at d 2, seed 1 at d 1
    frame.loc[~policy, "win_rate"] = 0.45
    results = prepare_results(frame)
    per_seed = st.hump(st.cell(results, "DPO", "tiny"))
    # seed 0 reads at seed 1's peak (d 1): 0.6; the points beyond it (d 2, 3): mean 0.6 -> drop 0.0, rise 0.15
    # seed 1 reads at seed 0's peak (d 2): 0.7; beyond it only d 3: 0.4 -> drop 0.3, rise 0.25
    assert per_seed["drop"].tolist() == pytest.approx([0.0, 0.3])
    assert per_seed["rise"].tolist() == pytest.approx([0.15, 0.25])
    assert per_seed["peak_sqrt_kl"].tolist() == [1.0, 2.0]


def test_intra_epoch_drop_by_hand() -> None:
    frame = planted_results(objectives=("DPO",), models={"tiny": 1}, betas=(0.01,), seeds=2, noise=0.0)
    frame.loc[(frame.objective == "DPO") & (frame.epoch_fraction == 0.5), "win_rate"] = [0.9, 0.8]
    results = prepare_results(frame)
    end = frame[(frame.objective == "DPO") & (frame.epoch_fraction == 1.0)]["win_rate"].to_numpy()
    per_seed = st.intra_epoch(st.cell(results, "DPO", "tiny"), 0.01)
    assert per_seed["best_fraction"].tolist() == [0.5, 0.5]
    assert per_seed["drop"].tolist() == pytest.approx([0.9 - end[0], 0.8 - end[1]])


def test_a_planted_hump_holds_and_a_rising_curve_fails() -> None:
    # reaches chosen so the smallest beta peaks at 25% of the epoch (d* = e^0.5): 'about a quarter' is told
    planted = {"betas": (0.025, 0.1, 0.3, 1.0), "reach": {"tiny": 0.55, "small": 0.5}}
    verdicts = _verdicts(_results(coefficients=(0.12, 0.08), noise=0.004, seed=3, seed_sd=0.01, **planted))
    assert verdicts["1"] == HOLDS and verdicts["2"] == HOLDS
    assert verdicts["8"] == UNTESTED and verdicts["rlhf"] == UNTESTED  # no toy or best-of-n table given
    verdicts = _verdicts(_results(coefficients=(0.08, 0.0), noise=0.004, seed=4))  # win rate only rises with d
    assert verdicts["1"] == FAILS


def test_hump_in_some_cells_only_is_partial() -> None:
    coefficients = {
        (o, m): (0.12, 0.08) if o != "IPO" else (0.08, 0.0) for o in ("DPO", "IPO", "SLiC") for m in ("tiny", "small")
    }
    findings = FindingsBuilder(_results(coefficients=coefficients, noise=0.004, seed=5)).build()
    humps = findings.details["humps"]
    assert set(humps.loc[humps.objective == "IPO", "reading"]) == {"contradicts"}
    assert set(humps.loc[humps.objective != "IPO", "reading"]) == {"agrees"}
    assert findings.table.set_index("rule").loc["1", "verdict"] == PARTIAL


def test_fit_form_follows_the_planted_form() -> None:
    # the log form was planted: its RMSE is the noise, well under half the quadratic's
    assert _verdicts(_results(noise=0.002, seed=6))["fit"] == HOLDS
    # a planted quadratic: the log form is no better
    frame = planted_results(objectives=("DPO",), seeds=4, betas=BETAS, epoch_fractions=FRACTIONS, noise=0.002, seed=7)
    policy = frame["objective"] == "DPO"
    d = frame.loc[policy, "sqrt_kl"]
    frame.loc[policy, "win_rate"] = 0.35 + d * (0.3 - 0.12 * d) + np.random.default_rng(0).normal(0, 0.002, len(d))
    assert _verdicts(prepare_results(frame))["fit"] == FAILS


def test_intra_epoch_position_needs_an_earlier_checkpoint() -> None:
    """With the first checkpoint at 25% and the best there, 'about a quarter' cannot be told from 'at once'."""
    results = _results(epoch_fractions=(0.25, 0.5, 0.75, 1.0), coefficients=(0.3, 0.3), noise=0.002, seed=8)
    findings = FindingsBuilder(results).build()
    table = findings.details["intra_epoch"]
    assert (table["best_fraction"] == 0.25).all() and not table["position_told"].any()
    assert set(table["reading_position"]) == {"undecided"} and set(table["reading_early"]) == {"agrees"}
    assert findings.table.set_index("rule").loc["2", "verdict"] == PARTIAL


def test_proxies_equivalence_holds_for_noise_and_fails_for_a_copy_of_win_rate() -> None:
    frame = planted_results(objectives=("DPO", "IPO"), seeds=6, betas=BETAS, epoch_fractions=FRACTIONS, noise=0.004)
    rng = np.random.default_rng(9)
    frame["val_accuracy"] = rng.normal(0.6, 0.05, len(frame))
    frame["val_loss"] = rng.normal(0.6, 0.05, len(frame))
    assert _verdicts(prepare_results(frame))["6"] == HOLDS
    frame["val_accuracy"] = frame["win_rate"] + rng.normal(0, 0.005, len(frame))
    frame["val_loss"] = -frame["win_rate"] + rng.normal(0, 0.005, len(frame))
    assert _verdicts(prepare_results(frame))["6"] == FAILS


def test_eq7_is_read_on_the_slope_not_on_r() -> None:
    frame = planted_results(seeds=4, betas=BETAS, noise=0.004)  # chosen = -0.8 KL, forward = 0.8 KL: slope 1
    assert _verdicts(prepare_results(frame))["7"] == HOLDS
    rng = np.random.default_rng(10)
    frame["chosen_logratio"] = -0.5 * frame["forward_kl"] + rng.normal(0, 0.05, len(frame))  # r near 1, slope 0.5
    assert _verdicts(prepare_results(frame))["7"] == FAILS
    slopes = frame["seed"].map({0: 0.6, 1: 0.75, 2: 0.9, 3: 1.05})  # seeds disagree: 0.83 [0.52, 1.13]
    frame["chosen_logratio"] = -slopes * frame["forward_kl"]
    assert _verdicts(prepare_results(frame))["7"] == PARTIAL


def test_toy_mdp_is_read_per_objective_and_beta() -> None:
    results = _results(seeds=2)
    rows = []
    for beta, change in ((0.1, -0.2), (1.0, -0.3), (0.05, 0.1)):
        for seed in range(4):
            rows.append(
                {
                    "objective": "DPO",
                    "beta": beta,
                    "seed": seed,
                    "in_data_start": 0.9,
                    "in_data_change": change + 0.01 * seed,
                }
            )
    toy = pd.DataFrame(rows)
    findings = FindingsBuilder(results, toy=toy).build()
    readings = findings.details["toy_mdp"].set_index("beta")["reading"].to_dict()
    assert readings == {0.05: "contradicts", 0.1: "agrees", 1.0: "agrees"}
    assert findings.table.set_index("rule").loc["8", "verdict"] == PARTIAL  # 1 of 3 contradicts


def test_classic_rlhf_row_reads_the_best_of_n_curve() -> None:
    results = _results(seeds=2)
    rows = []
    for model in ("tiny", "small"):
        for seed in range(4):
            for n in (1, 2, 4, 8, 16):
                kl = math.log(n) - (n - 1) / n
                win = 0.45 + 0.1 * math.sqrt(kl) - (0.08 * math.sqrt(kl) ** 2 if model == "tiny" else 0.0)
                for selector, w in (("proxy", win), ("gold", win + 0.05 * math.sqrt(kl))):
                    rows.append(
                        {
                            "model": model,
                            "seed": seed,
                            "selector": selector,
                            "n": n,
                            "kl": kl,
                            "sqrt_kl": math.sqrt(kl),
                            "win_rate": w + 0.002 * seed,
                        }
                    )
    findings = FindingsBuilder(results, best_of_n=pd.DataFrame(rows)).build()
    table = findings.details["best_of_n"].set_index("model")
    assert table.loc["tiny", "reading"] == "agrees" and table.loc["tiny", "best_n"] < 16
    assert table.loc["small", "reading"] == "contradicts"  # rises to n = N: no over-optimisation
    assert findings.table.set_index("rule").loc["rlhf", "verdict"] == FAILS  # half the sizes contradict


def test_contrasts_are_paired_by_seed() -> None:
    """A large shared seed effect cancels in a size contrast: the paired interval stays narrow."""
    results = _results(noise=0.002, seed_sd=0.05, seed=11)
    tiny, small = st.cell(results, "DPO", "tiny"), st.cell(results, "DPO", "small")
    paired = st.hump(tiny)["drop"] - st.hump(small)["drop"]
    assert paired.std() < 0.01
    shifted = st.column_mean(tiny, "win_rate")  # the seed effect itself, unpaired
    assert shifted.std() > 0.02


def test_an_objective_run_only_as_a_variant_is_read_against_dpo(tmp_path) -> None:
    """A planted flat curve flattens DPO's hump; a copy of DPO's curve (own noise) reads 'neither'; neither one
    enters the main grid's findings or the controls."""
    models = {"tiny": 1}
    coefficients = {("DPO", "tiny"): (0.12, 0.08), ("Flat", "tiny"): (0.05, 0.0), ("Same", "tiny"): (0.12, 0.08)}
    frame = planted_results(
        objectives=("DPO", "Flat", "Same"),
        models=models,
        betas=BETAS,
        epoch_fractions=FRACTIONS,
        coefficients=coefficients,
        seeds=5,
        noise=0.003,
        seed=7,
    )
    frame.loc[frame["objective"].isin(["Flat", "Same"]), "variant"] = "overopt"
    results = prepare_results(frame)
    findings = FindingsBuilder(results).build()
    table = findings.details["against_dpo"].set_index("objective")
    assert table.loc["Flat", "reading"].startswith("flattens the hump")
    assert table.loc["Flat", "drop_change_high"] < 0
    assert table.loc["Same", "drop_change_low"] < 0 < table.loc["Same", "drop_change_high"]
    assert table.loc["Flat", "reach"] == pytest.approx(1.0)
    assert "controls" not in findings.details  # no main-grid cell of Flat or Same to control against
    assert set(findings.details["humps"]["objective"]) == {"DPO"}
    figures = draw_lab_figures(results, tmp_path, dpi=40)
    assert "lab_against_dpo.png" in figures and "lab_controls.png" not in figures
    report = build_report(findings, results, figures, "make lab")
    assert (
        "## Objectives against over-optimisation, beside DPO" in report and "- Flat (tiny, 5 seeds): flattens" in report
    )


def test_an_objective_that_stays_below_dpos_peak_reads_neither() -> None:
    """An objective that barely leaves the reference has no drop either, which is no flattening: read 'neither'."""
    from lit_daa.analysis.against_dpo import reading
    from lit_daa.analysis.intervals import Interval

    below = Interval(-0.2, -0.3, -0.1, 8)
    assert reading(below, below, 0.25, 1.46, 3.6).startswith("neither: it stays below the KL of DPO's peak")
    assert reading(below, below, 1.9, 1.46, 3.6) == (
        "flattens the hump; moves the peak to smaller KL (within its range: sqrt(KL) up to 1.90, DPO's to 3.60)"
    )
    assert reading(below, Interval(0.1, -0.1, 0.3, 8), 3.6, 1.46, 3.6) == "flattens the hump"
