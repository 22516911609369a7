"""Best-of-n: the unbiased estimator against brute-force enumeration of every n-subset, and `lit-daa best-of-n`
end to end on the tiny embedded model with a tiny reward model."""

from __future__ import annotations

import csv
import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from lit_daa.cli import main
from lit_daa.evaluation.best_of_n import (
    best_of_n,
    best_of_n_kl,
    best_of_n_per_prompt,
    best_of_n_stderr,
    selection_weights,
)
from lit_daa.export import export_policy
from lit_daa.reward_model import RewardModule


def brute_force(scores: np.ndarray, outcomes: np.ndarray) -> np.ndarray:
    """(P, N): the mean over every n-subset of the outcome kept; answers tied at a subset's top score share
    it equally (the kept one is drawn uniformly among them)."""
    prompts, pool = scores.shape
    out = np.zeros((prompts, pool))
    for p in range(prompts):
        for n in range(1, pool + 1):
            kept = []
            for subset in itertools.combinations(range(pool), n):
                top = max(scores[p, i] for i in subset)
                kept.append(np.mean([outcomes[p, i] for i in subset if scores[p, i] == top]))
            out[p, n - 1] = np.mean(kept)
    return out


def test_weights_by_hand() -> None:
    w = selection_weights(3)
    # n = 1: each answer once in three; n = 2: subsets {12, 13, 23}, the max is 2 once and 3 twice; n = 3: the top
    assert w == pytest.approx(np.array([[1 / 3, 1 / 3, 1 / 3], [0, 1 / 3, 2 / 3], [0, 0, 1]]))
    assert selection_weights(16).sum(axis=1) == pytest.approx(np.ones(16))


@pytest.mark.parametrize("ties", [False, True])
def test_estimator_equals_brute_force(ties: bool) -> None:
    rng = np.random.default_rng(7)
    scores = rng.integers(0, 3, size=(4, 6)).astype(float) if ties else rng.normal(size=(4, 6))
    if ties:
        assert any(len(set(row)) < 6 for row in scores)  # the draw does have ties
    outcomes = rng.choice([0.0, 0.5, 1.0], size=(4, 6))
    expected = brute_force(scores, outcomes)
    got = best_of_n_per_prompt(scores, outcomes)
    assert got == pytest.approx(expected, abs=1e-12)
    assert best_of_n(scores, outcomes) == pytest.approx(expected.mean(axis=0), abs=1e-12)
    assert got[:, 0] == pytest.approx(outcomes.mean(axis=1))  # n = 1: the pool mean
    if not ties:  # n = N: the argmax's outcome
        assert got[:, -1] == pytest.approx(outcomes[np.arange(4), scores.argmax(axis=1)])
    assert best_of_n_stderr(scores, outcomes) == pytest.approx(expected.std(axis=0, ddof=1) / 2)


def test_all_tied_is_the_pool_mean_for_every_n() -> None:
    outcomes = np.array([[1.0, 0.0, 0.0, 0.5]])
    assert best_of_n(np.zeros((1, 4)), outcomes) == pytest.approx([0.375] * 4)


def test_kl_of_best_of_n() -> None:
    assert best_of_n_kl(np.array([1, 2, 4])) == pytest.approx([0.0, math.log(2) - 0.5, math.log(4) - 0.75])


@pytest.fixture(scope="module")
def tiny_reward_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    torch.manual_seed(0)
    rm = RewardModule(policy="embedded:neox-tiny")
    rm.configure_model()
    folder = tmp_path_factory.mktemp("rm") / "hf_reward_model"
    export_policy(rm.policy, rm.tokenizer, folder, rank=0)
    return str(folder)


def test_best_of_n_command(tiny_reward_model: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "bon.csv"
    argv = [
        "best-of-n",
        "--policy=embedded:neox-tiny",
        f"--reward_model={tiny_reward_model}",
        "--n=4",
        "--num_prompts=8",
        "--max_new_tokens=8",
        "--batch_size=8",
        "--model_name=tiny",
        f"--out={out}",
    ]
    assert main(argv) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 2 * 4
    assert [(r["selector"], int(r["n"])) for r in rows] == [(s, n) for s in ("proxy", "gold") for n in range(1, 5)]
    for r in rows:
        n = int(r["n"])
        assert float(r["kl"]) == pytest.approx(math.log(n) - (n - 1) / n)
        assert float(r["sqrt_kl"]) == pytest.approx(math.sqrt(float(r["kl"])))
        assert (r["model"], r["seed"], r["pool"], r["prompts"]) == ("tiny", "0", "4", "8")
    gold = [r for r in rows if r["selector"] == "gold"]
    proxy = [r for r in rows if r["selector"] == "proxy"]
    assert float(gold[-1]["win_rate"]) >= float(gold[0]["win_rate"])
    rewards = [float(r["gold_reward"]) for r in gold]
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(rewards))  # choosing by the gold reward itself
    assert rewards[-1] > rewards[0]  # eight prompts' pools are not all tied
    # both selectors start from the same pool: at n = 1 they agree
    assert proxy[0]["win_rate"] == gold[0]["win_rate"] and proxy[0]["gold_reward"] == gold[0]["gold_reward"]
    assert len((tmp_path / "bon.samples.jsonl").read_text().splitlines()) == 32
    assert "gold: win_rate = R0 + d (alpha - beta d)" in capsys.readouterr().out


def test_gold_only_without_a_reward_model(tmp_path: Path) -> None:
    out = tmp_path / "gold.csv"
    argv = ["best-of-n", "--policy=embedded:neox-tiny", "--n=2", "--num_prompts=3", "--max_new_tokens=4"]
    assert main([*argv, f"--out={out}", "--save_samples=false"]) == 0
    assert [r["selector"] for r in csv.DictReader(out.open())] == ["gold", "gold"]


@pytest.mark.parametrize(
    ("extra", "sentence"),
    [
        (["--n=0"], "--n must be at least 1, got 0"),
        (["--reward_model=./no/such/rm"], "--reward_model './no/such/rm' is not an existing model folder"),
        (["--policy=/no/such/policy"], "--policy '/no/such/policy' is not an existing model folder"),
    ],
)
def test_bad_input_is_one_sentence(tmp_path: Path, capsys: pytest.CaptureFixture, extra: list, sentence: str) -> None:
    argv = ["best-of-n", "--policy=embedded:neox-tiny", f"--out={tmp_path / 'x.csv'}", *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert sentence in err and len(err.splitlines()) == 1
