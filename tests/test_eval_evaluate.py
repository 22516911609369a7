"""`evaluate_policy` and `lit-daa evaluate` end to end on the embedded tiny model, eval sets, length R^2."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import torch
from transformers import GPTNeoXForCausalLM

from lit_daa.errors import InputError
from lit_daa.evaluation import eval_set, length_r2, read_eval_file
from lit_daa.evaluation.cli import main
from lit_daa.synthetic.model import TinyNeoX
from lit_daa.synthetic.world import GoldReward, SyntheticWorld

COLUMNS = {
    "kl",
    "kl_stderr",
    "sqrt_kl",
    "forward_kl",
    "forward_kl_stderr",
    "temperature",
    "cut_share",
    "win_rate",
    "win_rate_stderr",
    "ties",
    "invalid",
    "mean_length",
    "length_r2",
    "ood_mass",
    "ood_token_share",
    "gold_reward",
    "gold_relevance",
    "gold_short_penalty",
    "gold_long_penalty",
}
FAST = ["--num_prompts", "12", "--max_new_tokens", "6", "--batch_size", "8"]


def test_main_policy_equal_to_reference(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["--policy", "embedded:neox-tiny", "--reference", "embedded:neox-tiny", *FAST, "--out", str(tmp_path)]
    assert main(argv) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics) == COLUMNS
    assert metrics["kl"] == 0.0 and metrics["sqrt_kl"] == 0.0 and metrics["forward_kl"] == 0.0
    assert metrics["length_r2"] is None  # every implicit reward is 0: nothing to explain
    assert metrics["ood_mass"] is None and metrics["ood_token_share"] is None  # no --training_data given
    assert 0.0 <= metrics["win_rate"] <= 1.0 and metrics["invalid"] == 0
    samples = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 12
    assert all(s["logratio"] == 0.0 and s["verdict"] in ("win", "loss", "tie") for s in samples)
    assert all(1 <= s["length"] <= 6 and s["prompt"].startswith("topic ") for s in samples)
    wins = sum(s["verdict"] == "win" for s in samples) + sum(s["verdict"] == "tie" for s in samples) / 2
    assert metrics["win_rate"] == pytest.approx(wins / 12)
    # a cut sample used all 6 tokens; a shorter one stopped at its EOS
    assert all(s["length"] == 6 for s in samples if s["cut"])
    assert all(not s["cut"] for s in samples if s["length"] < 6)
    assert metrics["cut_share"] == pytest.approx(sum(s["cut"] for s in samples) / 12)
    assert metrics["temperature"] == 1.0
    # the gold terms, recomputed from the samples' text with the judge's default gold reward
    gold = GoldReward()
    parts = [gold.breakdown(s["prompt"], s["response"]) for s in samples]
    for name in ("relevance", "short_penalty", "long_penalty"):
        assert metrics[f"gold_{name}"] == pytest.approx(sum(p[name] for p in parts) / 12)
    assert metrics["gold_reward"] == pytest.approx(sum(gold(s["prompt"], s["response"]) for s in samples) / 12)
    assert "win_rate" in capsys.readouterr().out


def test_main_on_a_prompts_file_with_another_policy(tmp_path: Path) -> None:
    # a second tiny model with the reference's shape and tokenizer: its final layer norm ignores its input (weight 0),
    # so it draws every token i.i.d. from one peaked distribution with P(EOS) = 1/4: a KL of several nats from the
    # near-uniform reference, and response lengths that vary
    TinyNeoX(hidden_size=64, num_layers=2, num_heads=4, seed=1).build(tmp_path / "other")
    other = GPTNeoXForCausalLM.from_pretrained(tmp_path / "other")
    with torch.no_grad():
        norm, head = other.gpt_neox.final_layer_norm, other.get_output_embeddings().weight
        norm.weight.zero_()
        norm.bias.copy_(torch.nn.functional.normalize(norm.bias + 0.1, dim=0))
        head.mul_(3.0 / (head @ norm.bias).std())
        eos = other.config.eos_token_id
        rest = torch.logsumexp(torch.cat([head[:eos] @ norm.bias, head[eos + 1 :] @ norm.bias]), 0)
        head[eos] = norm.bias * (rest - math.log(3.0))
    other.save_pretrained(tmp_path / "other")
    rows = eval_set(SyntheticWorld(), 10, seed=3)
    prompts = tmp_path / "eval.jsonl"
    prompts.write_text("".join(json.dumps({**r, "extra": 1}) + "\n" for r in rows))
    out = tmp_path / "out"
    argv = [
        "--policy",
        str(tmp_path / "other"),
        "--reference",
        "embedded:neox-tiny",
        "--prompts",
        str(prompts),
        "--judge",
        "GoldRewardJudge",
        "--judge.length_weight",
        "0.5",
        "--beta",
        "0.1",
        "--forward_kl",
        "false",
        *FAST,
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["kl"] > 0 and metrics["sqrt_kl"] == pytest.approx(math.sqrt(metrics["kl"]))
    assert metrics["forward_kl"] is None
    assert 0.0 <= metrics["length_r2"] <= 1.0
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert [s["prompt"] for s in samples] == [r["prompt"] for r in rows]
    assert [s["reference"] for s in samples] == [r["reference"] for r in rows]
    assert sum(s["logratio"] for s in samples) / 10 == pytest.approx(metrics["kl"], rel=1e-5)


def test_bad_input_is_one_sentence(tmp_path: Path) -> None:
    base = ["--reference", "embedded:neox-tiny", *FAST]
    with pytest.raises(InputError, match="does not exist"):
        main(["--policy", "embedded:neox-tiny", *base, "--prompts", str(tmp_path / "missing.jsonl")])
    bad = tmp_path / "bad.csv"
    bad.write_text("prompt,answer\nhello,world\n")
    with pytest.raises(InputError, match=r"bad.csv line 2, field 'reference' is missing"):
        main(["--policy", "embedded:neox-tiny", *base, "--prompts", str(bad)])
    with pytest.raises(InputError, match="--policy '.*nowhere' is not an existing model folder"):
        main(["--policy", str(tmp_path / "nowhere"), *base])
    (tmp_path / "prompts.txt").write_text("x")
    with pytest.raises(InputError, match="must end in one of"):
        read_eval_file(tmp_path / "prompts.txt")
    not_json = tmp_path / "broken.jsonl"
    not_json.write_text('{"prompt": "a", "reference": "b"}\n{oops\n')
    with pytest.raises(InputError, match="broken.jsonl line 2 is not valid JSON"):
        read_eval_file(not_json)


def test_read_eval_file_csv(tmp_path: Path) -> None:
    path = tmp_path / "eval.csv"
    path.write_text('prompt,reference,other\n"POST: a, b TL;DR:", short,1\n')
    assert read_eval_file(path) == [{"prompt": "POST: a, b TL;DR:", "reference": " short"}]


def test_eval_set_prefers_the_human_response() -> None:
    class HumanWorld(SyntheticWorld):
        def human_response(self, prompt: str, rng: random.Random) -> str:
            return " human " + str(rng.randrange(100))

    rows = eval_set(HumanWorld(), 5, seed=1)
    assert rows == eval_set(HumanWorld(), 5, seed=1) and rows != eval_set(HumanWorld(), 5, seed=2)
    assert all(r["reference"].startswith(" human ") and r["prompt"].startswith("topic ") for r in rows)
    world = SyntheticWorld()
    assert not any(r["reference"].startswith(" human") for r in eval_set(world, 5, seed=1))
    if hasattr(world, "eval_set"):  # the world's own held-out set draws the same rows
        assert eval_set(world, 5, seed=1) == world.eval_set(5, 1)


def test_length_r2() -> None:
    lengths = [1, 2, 3, 4]
    assert length_r2([2.0, 4.0, 6.0, 8.0], lengths) == pytest.approx(1.0)
    # y = (1, 3, 2, 4): slope 0.8, fitted (1.3, 2.1, 2.9, 3.7), SS_res 1.8, SS_tot 5 -> R^2 0.64
    assert length_r2([1.0, 3.0, 2.0, 4.0], lengths) == pytest.approx(0.64)
    assert length_r2([10.0, 30.0, 20.0, 40.0], lengths) == pytest.approx(0.64)  # beta does not matter
    assert math.isnan(length_r2([1.0, 2.0, 3.0], [5, 5, 5]))
    assert math.isnan(length_r2([0.0, 0.0, 0.0], [1, 2, 3]))
