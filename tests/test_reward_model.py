"""The classic-RLHF reward model: Bradley-Terry loss and accuracy by hand, scores that match the exported judge's
for every layout, and a short fit through the real `lit-daa fit` command."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig

from lit_daa.cli import main, names_model_class
from lit_daa.data.collate import PreferenceCollator
from lit_daa.evaluation.judges import RewardModelJudge
from lit_daa.export import export_policy
from lit_daa.layouts import Concatenated, Packed, SharedPrompt
from lit_daa.reward_model import RewardModule, bradley_terry, reward_metrics, score_batch
from lit_daa.synthetic.source import SharedPreferencePairs
from lit_daa.synthetic.world import SyntheticWorld

ROOT = Path(__file__).resolve().parents[1]
RM_CONFIG = str(ROOT / "configs" / "lab" / "reward_model.yaml")


def test_bradley_terry_loss_and_accuracy_by_hand() -> None:
    # pairs (r_w, r_l) = (2, 0), (0, 1), (1, 1)
    values = bradley_terry(torch.tensor([2.0, 0.0, 1.0]), torch.tensor([0.0, 1.0, 1.0]))
    expected = [math.log(1 + math.exp(-2)), math.log(1 + math.exp(1)), math.log(2)]
    assert values["losses"].tolist() == pytest.approx(expected, abs=1e-6)
    assert values["correct"].tolist() == [1.0, 0.0, 0.5]  # a tie counts one half
    assert values["margins"].tolist() == [2.0, -1.0, 0.0]
    metrics = reward_metrics("val/")
    two = bradley_terry(torch.tensor([2.0, 0.0]), torch.tensor([0.0, 1.0]))
    metrics.update(**two)
    out = {k: float(v) for k, v in metrics.compute().items()}
    assert out["val/rm_loss"] == pytest.approx((math.log(1 + math.exp(-2)) + math.log(1 + math.exp(1))) / 2, abs=1e-6)
    assert out["val/rm_accuracy"] == 0.5
    assert out["val/rm_margin"] == pytest.approx(0.5)
    assert out["val/rm_chosen"] == pytest.approx(1.0) and out["val/rm_rejected"] == pytest.approx(0.5)


@pytest.fixture(scope="module")
def module() -> RewardModule:
    torch.manual_seed(0)
    rm = RewardModule(policy="embedded:neox-tiny")
    rm.configure_model()
    with torch.no_grad():  # a head far from 0, so different texts get clearly different scores
        rm.policy.score.weight.normal_(0.0, 1.0)
    return rm.eval()


def _triples() -> list[tuple[str, str, str]]:
    world = SyntheticWorld()
    rng = random.Random(3)
    out = []
    for _ in range(5):
        prompt = world.prompt(rng)
        out.append((prompt, world.response(prompt, rng), world.response(prompt, rng)))
    out.append((out[0][0], " music_1", ""))  # a one-word answer, and an empty one: EOS alone
    return out


def _rows(tokenizer, triples: list[tuple[str, str, str]]) -> list[dict]:
    eos = tokenizer.eos_token_id

    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    return [
        {"index": i, "prompt_ids": ids(p), "chosen_ids": [*ids(c), eos], "rejected_ids": [*ids(r), eos]}
        for i, (p, c, r) in enumerate(triples)
    ]


def test_exported_judge_reproduces_the_module_scores_for_every_layout(module: RewardModule, tmp_path: Path) -> None:
    written = export_policy(module.policy, module.tokenizer, tmp_path / "rm", rank=0)  # ExportPolicy's path
    assert AutoConfig.from_pretrained(written["policy"]).pad_token_id == module.tokenizer.pad_token_id
    judge = RewardModelJudge(str(written["policy"]), batch_size=3, device="cpu")
    triples = _triples()
    prompts = [p for p, _, _ in triples] * 2
    responses = [c for _, c, _ in triples] + [r for _, _, r in triples]
    expected = torch.tensor(judge.score(prompts, responses))
    assert expected.std() > 0.1  # the scores tell texts apart, so equality below means something
    rows = _rows(module.tokenizer, triples)
    with torch.no_grad():
        for layout in (SharedPrompt(), Concatenated(), Packed(token_budget=64)):
            batch = PreferenceCollator(module.tokenizer.pad_token_id, layout)(rows)
            assert torch.allclose(score_batch(module.policy, batch), expected, atol=1e-5), type(layout).__name__
    assert torch.allclose(module.score_texts(prompts, responses, batch_size=4), expected, atol=1e-5)


def test_pairs_flagged_invalid_are_left_out(module: RewardModule) -> None:
    rows = _rows(module.tokenizer, _triples()[:3])
    rows[1]["valid"] = False
    batch = PreferenceCollator(module.tokenizer.pad_token_id, SharedPrompt())(rows)
    with torch.no_grad():
        scores = score_batch(module.policy, batch)
        values = module.pair_values(batch)
    assert values["margins"].tolist() == pytest.approx([(scores[0] - scores[3]).item(), (scores[2] - scores[5]).item()])


def test_only_a_class_path_switches_the_model_to_subclass_mode(tmp_path: Path) -> None:
    assert names_model_class(["fit", "--config", RM_CONFIG])
    assert names_model_class(["fit", "--model=lit_daa.reward_model.RewardModule"])
    assert not names_model_class(["fit", "--config", str(ROOT / "configs" / "quickstart.yaml")])
    assert not names_model_class(["fit", "--model.policy", "embedded:neox-tiny"])
    nested = tmp_path / "nested.yaml"
    nested.write_text("fit:\n  model:\n    class_path: lit_daa.reward_model.RewardModule\n")
    assert names_model_class(["--config", str(nested), "fit"])


def test_reward_model_fits_through_the_cli_and_exports(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = [
        "fit",
        "--config",
        RM_CONFIG,
        "--model.policy=embedded:neox-tiny",
        f"--trainer.default_root_dir={tmp_path}",
        "--trainer.max_steps=40",
        "--trainer.val_check_interval=40",
        "--data.source.init_args.num_train=640",
        "--data.source.init_args.num_val=64",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "held-out reward-model accuracy" in out
    folder = tmp_path / "hf_reward_model"
    assert (folder / "model.safetensors").is_file() and (folder / "README.md").is_file()
    assert "Bradley-Terry reward model" in (folder / "README.md").read_text()
    judge = RewardModelJudge(str(folder), device="cpu")
    # held-out accuracy of the export on the run's own validation pairs: above chance after 40 steps
    val = SharedPreferencePairs(num_train=640, num_val=64, seed=0).validation().to_dict()
    chosen = judge.score(val["prompt"], val["chosen"])
    rejected = judge.score(val["prompt"], val["rejected"])
    accuracy = sum(c > r for c, r in zip(chosen, rejected, strict=True)) / len(chosen)
    assert accuracy > 0.6
    # the export holds the trained weights: the last checkpoint, loaded into a module, scores alike
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    rm = RewardModule(policy="embedded:neox-tiny")
    rm.configure_model()
    rm.load_state_dict(ckpt["state_dict"])
    mine = rm.eval().score_texts(val["prompt"][:8], val["chosen"][:8])
    assert torch.allclose(mine, torch.tensor(chosen[:8]), atol=1e-5)


def test_rm_config_prints_with_its_class(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", RM_CONFIG, "--model.policy=embedded:neox-tiny", "--print_config"])
    assert exit_info.value.code in (0, None)
    assert "class_path: lit_daa.reward_model.RewardModule" in capsys.readouterr().out
