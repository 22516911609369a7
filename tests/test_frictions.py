"""The first hour of a new user: data options that compose with a config, one output root, the quickstart on any
device, JSON structure errors, a model card in every export, resuming past the end of a finished run."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from test_cli import QUICKSTART

from lit_daa.cli import main
from lit_daa.cli_config import default_precision

PAIRS = [
    {"prompt": "tell me about the sun", "chosen": "it is a star", "rejected": "a dog"},
    {"prompt": "what is rain", "chosen": "water falling", "rejected": "the sun is blue"},
] * 16


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def fit(tmp_path: Path, *extra: str) -> list[str]:
    return [
        "fit",
        "--config",
        QUICKSTART,
        f"--trainer.default_root_dir={tmp_path}",
        "--trainer.max_steps=2",
        "--trainer.val_check_interval=2",
        "--trainer.enable_progress_bar=false",
        "--data.batch_size=4",
        *extra,
    ]


def test_own_data_on_the_command_line_replaces_the_configs_source(tmp_path: Path, capsys) -> None:
    data = write_jsonl(tmp_path / "mine.jsonl", PAIRS)
    assert main(fit(tmp_path / "run", f"--data.train_path={data}")) == 0
    out = capsys.readouterr()
    assert f"Tokenizing {data}" in out.err + out.out  # the run read the file typed, not the config's source
    # both typed: one sentence naming the flags
    argv = fit(
        tmp_path / "both", f"--data.train_path={data}", "--data.source=lit_daa.synthetic.source.SyntheticPreferences"
    )
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "give the training data with one of --data.train_path and --data.source, not both" in err


def test_two_configs_giving_data_twice_say_what_to_type(tmp_path: Path, capsys) -> None:
    data = write_jsonl(tmp_path / "mine.jsonl", PAIRS)
    extra = tmp_path / "data.yaml"
    extra.write_text(f"data:\n  train_path: {data}\n")
    assert main(fit(tmp_path / "run", "--config", str(extra))) == 2
    assert "keep one, e.g. with --data.source null" in capsys.readouterr().err


def test_default_root_dir_places_every_output_including_logs(tmp_path: Path, capsys) -> None:
    root = tmp_path / "elsewhere"
    assert main(fit(root)) == 0
    out = capsys.readouterr().out
    assert (root / "tensorboard").is_dir() and (root / "checkpoints" / "last.ckpt").is_file()
    assert f"logs (TensorBoard): {root}/tensorboard" in out and f"policy (Hugging Face format): {root}" in out
    logs = tmp_path / "logs"
    assert main(fit(tmp_path / "second", f"--trainer.logger.init_args.save_dir={logs}")) == 0
    assert (logs / "tensorboard").is_dir()  # a save_dir typed on the command line wins


def test_quickstart_picks_the_device_and_its_precision() -> None:
    assert "accelerator: auto" in Path(QUICKSTART).read_text()
    assert default_precision("auto", None, cuda=True, bf16=True) == "bf16-mixed"
    assert default_precision("auto", None, cuda=False, bf16=False) is None  # CPU: Lightning's 32-true
    assert default_precision("cpu", None, cuda=True, bf16=True) is None
    assert default_precision("gpu", "16-mixed", cuda=True, bf16=True) == "16-mixed"  # a given precision stays


def test_json_array_with_a_non_object_element_is_named(tmp_path: Path, capsys) -> None:
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps([PAIRS[0], ["not", "a", "pair"], PAIRS[1]]))
    assert main(fit(tmp_path / "run", f"--data.train_path={path}")) == 2
    err = capsys.readouterr().err
    assert f"{path} element 2 is a list, expected an object with prompt/chosen/rejected" in err


def test_every_export_has_a_model_card(tmp_path: Path, capsys) -> None:
    callback = {"class_path": "lit_daa.checkpoints.IntraEpochCheckpoints", "init_args": {"fractions": [0.5]}}
    argv = fit(tmp_path, "--data.source.init_args.num_train=16", "--trainer.callbacks+=" + json.dumps(callback))
    assert main(argv) == 0
    for folder in (tmp_path / "hf_policy", next((tmp_path / "intra_epoch").glob("examples_*"))):
        card = (folder / "README.md").read_text()
        for needed in (
            "embedded:neox-tiny",
            "DPO",
            "beta",
            "SyntheticPreferences",
            "fingerprint",
            "lit-daa",
            "steps",
            "pairs seen",
            "lit-daa fit",
        ):
            assert needed in card, (folder, needed)
    final = (tmp_path / "hf_policy" / "README.md").read_text()
    assert "val/loss" in final


def test_resume_with_more_steps_continues_like_one_longer_run(tmp_path: Path, capsys) -> None:
    def run(root: Path, steps: int, *extra: str) -> None:
        argv = fit(root, f"--trainer.max_steps={steps}", "--data.source.init_args.num_train=96", *extra)
        assert main(argv) == 0

    run(tmp_path / "long", 8)
    run(tmp_path / "short", 4)
    run(tmp_path / "short", 8, "--ckpt_path=last")
    assert "global step: 8" in capsys.readouterr().out
    from safetensors.torch import load_file

    a = load_file(tmp_path / "long" / "hf_policy" / "model.safetensors")
    b = load_file(tmp_path / "short" / "hf_policy" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_test_path_and_named_extra_validation_sets(tmp_path: Path, capsys) -> None:
    test = write_jsonl(tmp_path / "test.jsonl", PAIRS[:6])
    ood = write_jsonl(tmp_path / "ood.jsonl", list(reversed(PAIRS[:10])))
    extra = tmp_path / "extra.yaml"
    extra.write_text(f"data:\n  test_path: {test}\n  extra_val:\n    ood: {ood}\n")
    root = tmp_path / "run"
    assert main(fit(root, "--config", str(extra), "--data.source.init_args.num_train=32")) == 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(root / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"val/loss", "val/rewards/accuracies", "val/ood/loss", "val/ood/rewards/accuracies"} <= tags
    assert not any("dataloader_idx" in t for t in tags)
    capsys.readouterr()
    ckpt = str(root / "checkpoints" / "last.ckpt")
    argv = ["test", "--config", QUICKSTART, "--config", str(extra), f"--trainer.default_root_dir={root}"]
    assert main([*argv, f"--ckpt_path={ckpt}", "--data.source.init_args.num_train=32"]) == 0
    assert "test/loss" in capsys.readouterr().out


def test_extra_sets_get_the_same_bad_row_checks(tmp_path: Path, capsys) -> None:
    bad = write_jsonl(tmp_path / "bad.jsonl", [PAIRS[0], {"prompt": "x", "chosen": "", "rejected": "y"}])
    extra = tmp_path / "extra.yaml"
    extra.write_text(f"data:\n  extra_val:\n    ood: {bad}\n")
    assert main(fit(tmp_path / "run", "--config", str(extra))) == 2
    assert f"{bad} line 2, field 'chosen': empty response" in capsys.readouterr().err
