"""The `lit-daa` command end to end on the embedded default: configs, objectives, export, errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from lit_daa.cli import main

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "configs" / "quickstart.yaml")
ALL_CONFIGS = sorted(p for p in (ROOT / "configs").rglob("*.yaml") if "sweeps" not in p.parts)  # sweeps: test_sweep


def small(tmp_path: Path, *extra: str) -> list[str]:
    """Quickstart arguments shrunk to a few steps in tmp_path."""
    return [
        "fit",
        "--config",
        QUICKSTART,
        f"--trainer.default_root_dir={tmp_path}",
        f"--trainer.logger.init_args.save_dir={tmp_path}",
        "--trainer.max_steps=6",
        "--trainer.val_check_interval=6",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--data.source.init_args.num_train=96",
        "--data.source.init_args.num_val=32",
        "--data.batch_size=8",
        *extra,
    ]


@pytest.mark.parametrize("config", ALL_CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_yaml_parses(config: Path, capsys: pytest.CaptureFixture) -> None:
    if config.name == "quickstart.yaml" or "objectives" in config.parts or "presets" in config.parts:
        argv = ["fit", "--config", QUICKSTART, "--config", str(config), "--print_config"]
    else:
        argv = ["fit", "--config", str(config), "--print_config"]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code in (0, None)
    assert "model:" in capsys.readouterr().out


def test_help_lists_objectives(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    out = capsys.readouterr().out
    import lit_daa.objectives as objectives

    helpers = ("Objective", "ObjectiveOutput", "PairLogps", "Divergence", "Alpha", "ForwardKL", "JensenShannon")
    helpers += ("RowLogps", "RowOutput", "UnpairedObjective")
    names = [n for n in objectives.__all__ if n not in (*helpers, "ReverseKL")]
    assert len(names) == 29  # every objective class, Weighted, RPO, FDPO, LDDPO, WPO and the unpaired ones included
    for name in names:
        assert f"lit_daa.objectives.{name}" in out, name
    assert "--model.objective" in out


NEW_OBJECTIVES = [
    ["RobustDPO"], ["EXO"], ["NCA"], ["BCOPair"], ["SPPOHard"], ["AOT"], ["AOTUnpaired"], ["APOZero"], ["APODown"],
    ["DiscoPOP"], ["NormalizedDPO", "1.0"], ["ORPO"], ["CPO"], ["FDPO"], ["RPO"], ["LDDPO"],
]  # fmt: skip


@pytest.mark.parametrize(
    "objective",
    [["DPO"], ["IPO", "0.5"], ["SLiC"], ["RDPO"], ["SimPO", "2.0"], ["SFT", "1.0"], *NEW_OBJECTIVES],
    ids=lambda o: o[0],
)
def test_each_objective_trains_from_the_command_line(tmp_path: Path, objective: list[str]) -> None:
    name, *beta = objective
    before = AutoModelForCausalLM.from_pretrained(str(_embedded("embedded:neox-tiny"))).state_dict()
    argv = small(tmp_path, f"--model.objective={name}", f"--model.objective.beta={beta[0] if beta else 0.1}")
    assert main(argv) == 0
    exported = AutoModelForCausalLM.from_pretrained(str(tmp_path / "hf_policy"))
    after = exported.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before), "training did not change the policy"
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    assert not any(k.startswith("reference") for k in ckpt["state_dict"]), "the reference must not be checkpointed"
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def _embedded(name: str) -> Path:
    from lit_daa.models import resolve_model

    return Path(resolve_model(name))


def test_unknown_objective_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(small(tmp_path, "--model.objective=NotAnObjective"))
    assert exit_info.value.code == 2
    assert "NotAnObjective" in capsys.readouterr().err


def test_unknown_option_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(small(tmp_path, "--model.betta=0.1"))
    assert exit_info.value.code == 2
    assert "betta" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "sentence"),
    [
        (["--model.policy=./no/such/model"], "model.policy './no/such/model' is not an existing model folder"),
        (["--model.reference=/no/such/ref"], "model.reference '/no/such/ref' is not an existing model folder"),
        (["--model.objective.beta=0"], "beta must be > 0, got 0"),
        (["--model.objective.beta=-1"], "beta must be > 0, got -1"),
    ],
)
def test_bad_options_get_one_sentence(tmp_path: Path, capsys, extra: list[str], sentence: str) -> None:
    assert main(small(tmp_path, *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert sentence in err
    assert "Traceback" not in err and len(err.splitlines()) == 1


def test_nan_loss_stops_with_the_step_named_and_checkpoint_intact(tmp_path: Path, capsys) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        argv = small(
            tmp_path,
            "--model.objective=plugins.nan_objective.NaNAfter",
            "--model.objective.after=4",
            "--checkpoint.every_n_train_steps=2",
        )
        assert main(argv) == 1
    finally:
        sys.path.remove(str(ROOT / "tests"))
    err = capsys.readouterr().err
    assert "at global step 4" in err and "Traceback" not in err
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 4
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())
    assert not (tmp_path / "hf_policy").exists()


def test_top_level_help_names_every_command(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("fit", "validate", "test", "sweep", "evaluate", "analyze", "toy-mdp"):
        assert command in out


@pytest.mark.parametrize("fragment", ["wpo.yaml", "rpo.yaml", "mpo.yaml", "fdpo.yaml", "ld_dpo.yaml"])
def test_objective_fragments_train(tmp_path: Path, fragment: str) -> None:
    argv = small(tmp_path, "--config", str(ROOT / "configs" / "objectives" / fragment))
    assert main(argv) == 0
    assert (tmp_path / "hf_policy" / "model.safetensors").is_file()
