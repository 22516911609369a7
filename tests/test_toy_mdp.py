"""Tests of the toy tree MDP: tree log-probs, the pair-matrix rank, the flat directions and the mass dynamics."""

from __future__ import annotations

import csv
import itertools
import math
from pathlib import Path

import pytest
import torch

import lit_daa.objectives as objectives_module
from lit_daa.errors import InputError
from lit_daa.objectives import DPO, IPO, ObjectiveOutput, PairLogps, SLiC
from lit_daa.toy_mdp import (
    OBJECTIVES,
    PreferencePairs,
    SharedDepthPolicy,
    TabularPolicy,
    TreeMDP,
    loss_equivalent_logps,
    main,
    pair_logps,
    pair_matrix_rank,
    run_toy_mdp,
    sample_pairs,
)


def _walk_logp(logits: torch.Tensor, actions: tuple[int, ...]) -> float:
    """log pi of one action sequence by walking the tree node by node (breadth-first node numbering)."""
    node, total = 0, 0.0
    for action in actions:
        total += float(torch.log_softmax(logits[node], dim=-1)[action])
        node = 3 * node + 1 + action  # children of node n are 3n+1, 3n+2, 3n+3 in breadth-first order
    return total


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_trajectory_probabilities_sum_to_one_and_match_a_tree_walk(depth: int) -> None:
    mdp = TreeMDP(depth)
    assert mdp.num_trajectories == 3**depth
    assert mdp.num_nodes == sum(3**level for level in range(depth))
    assert mdp.num_free_parameters == mdp.num_trajectories - 1
    logits = torch.randn(mdp.num_nodes, 3, generator=torch.Generator().manual_seed(depth))
    logps = mdp.trajectory_logps(logits)
    assert logps.shape == (mdp.num_trajectories,)
    assert float(logps.exp().sum()) == pytest.approx(1.0, abs=1e-6)
    # Trajectory index = actions read as a base-3 number, first action most significant.
    for index, actions in enumerate(itertools.product(range(3), repeat=depth)):
        assert float(logps[index]) == pytest.approx(_walk_logp(logits, actions), abs=1e-5)


def test_logits_for_reproduces_any_trajectory_distribution() -> None:
    mdp = TreeMDP(3)
    probs = torch.rand(mdp.num_trajectories, generator=torch.Generator().manual_seed(1))
    probs = probs / probs.sum()
    logps = TabularPolicy(mdp, mdp.logits_for(probs))()
    assert torch.allclose(logps.exp(), probs, atol=1e-6)


def _graph_rank(pairs: PreferencePairs) -> int:
    """Rank of a signed edge-vertex incidence matrix = touched vertices - connected components (union-find)."""
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in zip(pairs.chosen.tolist(), pairs.rejected.tolist(), strict=True):
        parent[find(a)] = find(b)
    return len(parent) - len({find(x) for x in parent})


@pytest.mark.parametrize(("depth", "num_pairs", "seed"), [(2, 3, 0), (2, 8, 1), (3, 6, 0), (3, 12, 2), (4, 20, 3)])
def test_pair_matrix_rank_matches_a_graph_computation_and_is_deficient(depth: int, num_pairs: int, seed: int) -> None:
    mdp = TreeMDP(depth)
    pairs = sample_pairs(mdp.num_trajectories, num_pairs, torch.Generator().manual_seed(seed))
    rank = pair_matrix_rank(pairs)
    assert rank == _graph_rank(pairs)
    assert rank <= num_pairs
    assert rank < mdp.num_free_parameters < mdp.num_trajectories
    matrix = pairs.pair_matrix()
    assert matrix.shape == (num_pairs, mdp.num_trajectories)
    assert (matrix.sum(axis=1) == 0).all()  # each row is +1 at chosen, -1 at rejected


def test_sampled_pairs_are_distinct_and_labelled_by_the_gold_reward() -> None:
    pairs = sample_pairs(27, 30, torch.Generator().manual_seed(4))
    assert (pairs.chosen != pairs.rejected).all()
    unordered = {frozenset(p) for p in zip(pairs.chosen.tolist(), pairs.rejected.tolist(), strict=True)}
    assert len(unordered) == 30
    assert (pairs.gold_reward[pairs.chosen] > pairs.gold_reward[pairs.rejected]).all()


def test_cli_objectives_are_the_library_classes_and_the_run_calls_them() -> None:
    for name, cls in OBJECTIVES.items():
        assert getattr(objectives_module, name) is cls
    calls: list[float] = []

    class SpyDPO(DPO):
        def forward(self, logps: PairLogps) -> ObjectiveOutput:
            calls.append(self.beta)
            return super().forward(logps)

    result = run_toy_mdp(objectives=[SpyDPO, IPO], betas=[0.5], steps=3)
    assert calls == [0.5] * 4
    start = {str(r["objective"]): float(r["loss"]) for r in result.initial_records()}
    # At the reference h = 0: DPO gives log 2 and the paper-form IPO gives (0 - 1)^2 = 1.
    assert start == pytest.approx({"SpyDPO": math.log(2.0), "IPO": 1.0})


def test_loss_cannot_tell_apart_policies_that_rescale_the_in_data_mass() -> None:
    """The rank deficiency made concrete: same loss for every objective, very different out-of-data mass."""
    mdp = TreeMDP(3)
    pairs = sample_pairs(mdp.num_trajectories, 6, torch.Generator().manual_seed(0))
    in_data = pairs.masks()["in_data"]
    ref = TabularPolicy(mdp)().detach()
    logps = TabularPolicy(mdp, torch.randn(mdp.num_nodes, 3, generator=torch.Generator().manual_seed(5)))().detach()
    other = loss_equivalent_logps(logps, in_data, in_data_mass=0.05)
    # The rescaled distribution is still a tree policy.
    other = TabularPolicy(mdp, mdp.logits_for(other.exp()))().detach()
    assert float(other.exp()[~in_data].sum()) == pytest.approx(0.95, abs=1e-5)
    assert abs(float(logps.exp()[~in_data].sum()) - 0.95) > 0.2
    for objective in (DPO(0.1), IPO(0.1), SLiC(0.1)):
        first = objective(pair_logps(logps, ref, pairs, mdp.depth)).loss
        second = objective(pair_logps(other, ref, pairs, mdp.depth)).loss
        assert float(second) == pytest.approx(float(first), abs=1e-4)


def test_dpo_at_small_beta_moves_mass_onto_net_winners_not_out_of_the_data() -> None:
    """What training actually does (see the module docstring): the opposite of the paper's Fig. 6 summary.

    Net winners (chosen more often than rejected) take the mass; in-data mass rises and out-of-data mass falls.
    """
    result = run_toy_mdp(objectives=[DPO], betas=[0.05], steps=150)
    first, last = result.initial_records()[0], result.final_records()[0]
    assert float(first["out_of_data_mass"]) == pytest.approx(1 - float(first["in_data_mass"]))
    assert float(last["in_data_mass"]) > float(first["in_data_mass"]) + 0.3
    assert float(last["out_of_data_mass"]) < float(first["out_of_data_mass"]) - 0.3
    assert float(last["rejected_mass"]) < 0.01
    pairs = result.pairs
    net_wins = torch.bincount(pairs.chosen, minlength=27) - torch.bincount(pairs.rejected, minlength=27)
    probs = result.final_logps[("DPO", 0.05)].exp()
    assert float(probs[net_wins > 0].sum()) > 0.9
    assert float(probs[net_wins > 0].sum()) == pytest.approx(float(last["chosen_mass"]), abs=0.05)
    # Larger beta stops earlier and leaves more mass out of the data.
    wide = run_toy_mdp(objectives=[DPO], betas=[1.0], steps=150).final_records()[0]
    assert float(wide["out_of_data_mass"]) > float(last["out_of_data_mass"])


def test_main_writes_png_and_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "toy"
    code = main(["--steps", "10", "--betas", "0.1", "1.0", "--objectives", "DPO", "SLiC", "--out", str(out)])
    assert code == 0
    png = out / "toy_mdp.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with (out / "toy_mdp.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * 2 * 11
    assert {row["objective"] for row in rows} == {"DPO", "SLiC"}
    printed = capsys.readouterr().out
    assert "pair-matrix rank 6" in printed and "27 trajectories" in printed


def test_main_reports_bad_input_with_exit_code_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--pairs", "1000", "--steps", "1", "--out", str(tmp_path)]) == 2
    assert "pairs must be in" in capsys.readouterr().err


SHARED_DEPTH = {"policy": "shared-depth", "reference_scale": 1.0, "num_pairs": 4, "pairs_from": "reference"}


def test_shared_depth_policy_has_depth_times_three_parameters_and_starts_at_the_reference() -> None:
    mdp = TreeMDP(3)
    ref = torch.randn(mdp.num_nodes, 3, generator=torch.Generator().manual_seed(0))
    policy = SharedDepthPolicy(mdp, ref)
    assert sum(p.numel() for p in policy.parameters()) == policy.num_trainable_parameters == 9
    assert torch.allclose(policy(), TabularPolicy(mdp, ref)())
    with torch.no_grad():
        policy.offset[1, 2] += 1.0
    # Every depth-1 node moved by the same offset; other depths untouched.
    moved = (policy.logits - ref).abs().sum(dim=-1) > 0
    assert moved.tolist() == (mdp.node_level == 1).tolist()


def test_shared_depth_dpo_at_small_beta_moves_mass_out_of_the_data() -> None:
    """The paper's effect, with parameters shared across states (the recommended command's settings, seed 9)."""
    result = run_toy_mdp(objectives=[DPO], betas=[0.05, 0.1, 1.0], seed=9, **SHARED_DEPTH)
    assert (result.policy, result.num_trainable_parameters, result.num_free_parameters) == ("shared-depth", 9, 6)
    assert (result.pair_rank, result.parameter_rank) == (4, 4)
    first, *_ = result.initial_records()
    small, small2, wide = result.final_records()
    for last in (small, small2):
        assert float(last["in_data_mass"]) < float(first["in_data_mass"]) - 0.5
        assert float(last["out_of_data_mass"]) > float(first["out_of_data_mass"]) + 0.5
    # Larger beta holds the policy nearer the reference: more mass stays in the data.
    assert float(wide["in_data_mass"]) > float(small["in_data_mass"]) + 0.05


def test_shared_depth_effect_holds_for_most_seeds() -> None:
    falls = 0
    for seed in range(10):
        result = run_toy_mdp(objectives=[DPO], betas=[0.05], steps=150, seed=seed, **SHARED_DEPTH)
        first, last = result.initial_records()[0], result.final_records()[0]
        falls += float(last["in_data_mass"]) < float(first["in_data_mass"]) - 0.05
    assert falls >= 6


def test_main_prints_the_policy_and_both_ranks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--policy", "shared-depth", "--reference-scale", "1", "--pairs", "4", "--pairs-from", "reference"]
    assert main([*argv, "--seed", "9", "--steps", "5", "--betas", "0.1", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "shared-depth policy with 9 trainable parameters" in printed
    assert "pair-matrix rank 4 (of 27 trajectories, 9 trainable parameters" in printed
    assert main(["--steps", "1", "--betas", "0.1", "--out", str(tmp_path)]) == 0
    assert "tabular policy with 39 trainable parameters" in capsys.readouterr().out


def test_tabular_policy_with_a_rejected_favouring_reference_moves_mass_out_of_the_data(tmp_path: Path) -> None:
    """0.9 of pi_ref on the rejected trajectories (docs/toy_mdp.md): at beta 1 DPO ends with less in-data mass than
    it started with in every seed, and more out of the data; the summary and transients figure are written."""
    from lit_daa.toy_mdp.report import seed_summary
    from lit_daa.toy_mdp.train import run_seeds

    seeds = [0, 1, 2, 3]
    results = run_seeds(seeds, num_pairs=2, objectives=DPO, betas=[1.0], reference_rejected_mass=0.9)
    for result in results:
        first, last = result.initial_records()[0], result.final_records()[0]
        rejected = result.pairs.masks()["rejected"]
        start_probs = torch.full((27,), 0.1 / 27) + 0.9 * rejected.float() / rejected.sum()
        assert first["in_data_mass"] == pytest.approx(float(start_probs[result.pairs.masks()["in_data"]].sum()))
        assert last["in_data_mass"] < first["in_data_mass"] - 0.2
        assert last["out_of_data_mass"] > first["out_of_data_mass"] + 0.2
    rows = seed_summary(results, seeds)
    assert [r["seed"] for r in rows] == seeds and all(r["in_data_change"] < -0.2 for r in rows)
    assert main(["--reference-rejected-mass", "0.9", "--pairs", "2", "--objectives", "DPO", "--betas", "1",
                 "--steps", "20", "--seeds", "0", "1", "--out", str(tmp_path)]) == 0  # fmt: skip
    assert (tmp_path / "summary.csv").is_file() and (tmp_path / "transients.png").is_file()


def test_rejected_favouring_reference_is_one_of_the_reference_options() -> None:
    with pytest.raises(InputError, match="one of reference_logits"):
        run_toy_mdp(reference_rejected_mass=0.9, reference_in_data_mass=0.5, steps=0)
    with pytest.raises(InputError, match=r"reference_rejected_mass must be in \(0, 1\)"):
        run_toy_mdp(reference_rejected_mass=1.5, steps=0)
