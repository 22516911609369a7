"""Bad options, checkpoints, paths and config files given to `lit-daa fit/validate` (issue 15): each is refused in
one sentence naming the option or file, with exit code 2 and no traceback, before the model or the data load where
the check does not need them."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch
from test_cli import QUICKSTART

from lit_daa.adapters import LoRA
from lit_daa.checkpoint_checks import check_state_matches
from lit_daa.cli import main
from lit_daa.errors import InputError
from lit_daa.layouts import Packed
from lit_daa.models import resolve_model

# small enough that the one case needing the data and the model (a checkpoint of another model) takes ~1 s
SMALL = [
    "--trainer.max_steps=1",
    "--trainer.val_check_interval=1",
    "--trainer.limit_val_batches=0",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--data.source.init_args.num_train=8",
    "--data.source.init_args.num_val=4",
    "--data.batch_size=4",
    "--data.eval_batch_size=4",
    "--export.enabled=false",
]


def command(root: Path, *extra: str, subcommand: str = "fit") -> list[str]:
    return [subcommand, "--config", QUICKSTART, f"--trainer.default_root_dir={root}", *SMALL, *extra]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The bad inputs, built once: a real checkpoint of embedded:neox-tiny (a 1-step fit) and files made from it."""
    folder = tmp_path_factory.mktemp("bad-inputs")
    assert main(command(folder / "tiny")) == 0
    ckpt = folder / "tiny" / "checkpoints" / "last.ckpt"
    made = {"ckpt": ckpt, "missing": folder / "no-such.ckpt", "empty_dir": folder / "empty"}
    made["empty_dir"].mkdir()
    (made["empty_dir"] / "notes.txt").write_text("no model here\n")
    made["truncated"] = folder / "truncated.ckpt"
    made["truncated"].write_bytes(ckpt.read_bytes()[:100])
    made["text"] = folder / "notes.ckpt"
    made["text"].write_text("not a checkpoint\n")
    made["json"] = folder / "metrics.json"
    made["json"].write_text('{"loss": 0.5}\n')
    made["other_zip"] = folder / "archive.ckpt"
    with zipfile.ZipFile(made["other_zip"], "w") as archive:
        archive.writestr("readme.txt", "a zip, but not torch.save's")
    made["bare_weights"] = folder / "weights.pt"
    torch.save({"lm_head.weight": torch.zeros(2, 2)}, made["bare_weights"])
    made["a_file"] = folder / "a-file"
    made["a_file"].write_text("x\n")
    made["bad_yaml"] = folder / "bad.yaml"
    made["bad_yaml"].write_text("trainer:\n  max_steps: 2\nmodel:\n  policy: [a\n  b: c\n")
    made["list_yaml"] = folder / "list.yaml"
    made["list_yaml"].write_text("- trainer\n- model\n")
    made["empty_yaml"] = folder / "empty.yaml"
    made["empty_yaml"].write_text("# nothing yet\n")
    made["precision_yaml"] = folder / "precision.yaml"
    made["precision_yaml"].write_text("trainer:\n  precision: 17\n")
    made["ckpt_yaml"] = folder / "resume.yaml"  # a ckpt_path from a config file is checked after parsing
    made["ckpt_yaml"].write_text(f"ckpt_path: {made['truncated']}\n")
    return {name: str(path) for name, path in made.items()}


ZIP = "is not a Lightning checkpoint: it is no complete zip archive"
CASES = {
    # checkpoints given to --ckpt_path
    "ckpt-missing": (["--ckpt_path={missing}"], "--ckpt_path {missing} does not exist"),
    "ckpt-missing-validate": (["validate", "--ckpt_path={missing}"], "--ckpt_path {missing} does not exist"),
    "ckpt-truncated": (["--ckpt_path={truncated}"], "--ckpt_path {truncated} " + ZIP + " (100 bytes)"),
    "ckpt-truncated-validate": (["validate", "--ckpt_path={truncated}"], "--ckpt_path {truncated} " + ZIP),
    "ckpt-text": (["--ckpt_path={text}"], "--ckpt_path {text} " + ZIP),
    "ckpt-json": (["validate", "--ckpt_path={json}"], "--ckpt_path {json} " + ZIP),
    "ckpt-other-zip": (["--ckpt_path={other_zip}"], "--ckpt_path {other_zip} is not a Lightning checkpoint: it is a"),
    "ckpt-bare-weights": (["--ckpt_path={bare_weights}"], "--ckpt_path {bare_weights} is not a Lightning checkpoint"),
    "ckpt-folder": (["--ckpt_path={empty_dir}"], "--ckpt_path {empty_dir} is a folder without .metadata"),
    "ckpt-other-model": (
        ["--model.policy=embedded:neox-mini", "--ckpt_path={ckpt}"],
        "--ckpt_path {ckpt} holds another model: its policy.gpt_neox.embed_in.weight has shape (151, 64) where "
        "this model's has (151, 128)",
    ),
    "ckpt-in-a-config": (["validate", "--config={ckpt_yaml}"], "--ckpt_path {truncated} " + ZIP),
    # options checked by lit-daa, not by the library below
    "lr": (["--model.optimizer.lr=-1"], "model.optimizer.lr must be at least 0, got -1"),
    "lr-init-args": (["--model.optimizer.init_args.lr=-0.5"], "model.optimizer.lr must be at least 0, got -0.5"),
    "max-steps": (["--trainer.max_steps=-5"], "trainer.max_steps must be at least 0 (or -1 for no limit), got -5"),
    "accumulate": (["--trainer.accumulate_grad_batches=0"], "trainer.accumulate_grad_batches must be at least 1"),
    "ckpt-every-steps": (["--checkpoint.every_n_train_steps=-1"], "checkpoint.every_n_train_steps must be at least 0"),
    "ckpt-every-epochs": (["--checkpoint.every_n_epochs=-2"], "checkpoint.every_n_epochs must be at least 0, got -2"),
    "val-interval": (["--trainer.val_check_interval=-1"], "trainer.val_check_interval must be above 0, got -1"),
    "val-epochs": (["--trainer.check_val_every_n_epoch=0"], "trainer.check_val_every_n_epoch must be at least 1"),
    "lora-rank": (
        ["--model.lora=lit_daa.adapters.LoRA", "--model.lora.r=0"],
        "model.lora.r (the adapter rank) must be at least 1, got 0",
    ),
    "packed-budget": (
        ["--data.layout=lit_daa.layouts.Packed", "--data.layout.token_budget=0"],
        "data.layout.token_budget must be at least 1, got 0",
    ),
    "precision": (["--trainer.precision=17"], "--trainer.precision '17' is not a precision Lightning knows: give one"),
    "precision-config": (
        ["--config={precision_yaml}"],
        "trainer.precision in {precision_yaml} '17' is not a precision Lightning knows",
    ),
    # paths
    "root-is-a-file": (["--trainer.default_root_dir={a_file}"], "trainer.default_root_dir {a_file} is a file"),
    "root-inside-a-file": (
        ["--trainer.default_root_dir={a_file}/run"],
        "trainer.default_root_dir {a_file}/run is inside {a_file}, which is a file",
    ),
    "policy-empty-folder": (
        ["--model.policy={empty_dir}"],
        "model.policy '{empty_dir}' is a folder with no config.json or adapter_config.json in it",
    ),
    "policy-not-a-hub-id": (
        ["--model.policy=my model"],
        "model.policy 'my model' is not an existing model folder, nor a hub id",
    ),
    # config files
    "config-yaml-error": (["--config={bad_yaml}"], "--config {bad_yaml} is not valid YAML at line 5, column 4"),
    "config-list": (["--config={list_yaml}"], "--config {list_yaml} holds a list, not a mapping of options"),
    "config-empty": (["--config={empty_yaml}"], "--config {empty_yaml} holds nothing, not a mapping of options"),
}


def assert_refused(argv: list[str], sentence: str, capsys: pytest.CaptureFixture) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("lit-daa: error: ")]
    assert len(errors) == 1 and errors[0] == err.strip().splitlines()[-1], err  # one line, the last
    assert sentence in errors[0]


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_refused_in_one_sentence(
    case: str, files: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    extra, sentence = CASES[case]
    subcommand = "fit"
    if extra[0] == "validate":
        subcommand, extra = "validate", extra[1:]
    argv = command(tmp_path / "run", *(arg.format(**files) for arg in extra), subcommand=subcommand)
    assert_refused(argv, sentence.format(**files), capsys)


@pytest.mark.slow  # the same check as ckpt-other-model, on validate's restore (~1.5 s)
def test_checkpoint_of_another_model_to_validate(
    files: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    argv = command(tmp_path, "--model.policy=embedded:neox-mini", f"--ckpt_path={files['ckpt']}", subcommand="validate")
    assert_refused(argv, f"--ckpt_path {files['ckpt']} holds another model: its policy.gpt_neox.embed_in", capsys)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_gpu_accelerator_without_a_gpu(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = command(tmp_path, "--trainer.accelerator=gpu")
    assert_refused(argv, "trainer.accelerator gpu needs a CUDA GPU and none is visible here: use", capsys)


def test_cache_variable_that_is_a_file(
    files: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIT_DAA_CACHE", files["a_file"])
    assert_refused(command(tmp_path), f"LIT_DAA_CACHE {files['a_file']} is a file, not a folder", capsys)


@pytest.mark.parametrize("option", ["policy", "reference"])
def test_evaluate_folder_with_no_model(option: str, files: dict[str, str], capsys: pytest.CaptureFixture) -> None:
    models = {"policy": "embedded:neox-tiny", "reference": "embedded:neox-tiny", option: files["empty_dir"]}
    argv = ["evaluate", "--policy", models["policy"], "--reference", models["reference"], "--num_prompts", "2"]
    assert_refused(argv, f"--{option} '{files['empty_dir']}' is a folder with no config.json", capsys)


def test_python_api_refuses_the_same_options(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"model\.lora\.r \(the adapter rank\) must be at least 1, got 0"):
        LoRA(r=0)
    with pytest.raises(InputError, match="model.lora.dropout must be in"):
        LoRA(dropout=1.0)
    with pytest.raises(InputError, match="data.layout.token_budget must be at least 1, got 0"):
        Packed(token_budget=0)
    with pytest.raises(InputError, match="is a folder with no config.json"):
        resolve_model(str(tmp_path), "model.policy")
    with pytest.raises(InputError, match="not an existing model folder, nor a hub id"):
        resolve_model("models/", "model.policy")
    assert resolve_model("owner/name") == "owner/name"  # a hub id is left to from_pretrained


def test_checkpoint_with_other_parameter_names_is_refused() -> None:
    """A LoRA checkpoint given to a full fine-tune (and back): parameters missing on one side or the other."""
    own = {"policy.w": torch.zeros(2), "reference.w": torch.zeros(2)}  # the reference is never checkpointed
    lora = {"policy.w": torch.zeros(2), "policy.lora_A": torch.zeros(1)}
    with pytest.raises(InputError, match=r"last\.ckpt holds another model: this model has no policy\.lora_A"):
        check_state_matches(own, {"state_dict": lora}, "last.ckpt")
    with pytest.raises(InputError, match=r"last\.ckpt holds another model: it has no policy\.lora_A"):
        check_state_matches(lora, {"state_dict": {"policy.w": torch.zeros(2)}}, "last.ckpt")
    check_state_matches(own, {"state_dict": {"policy.w": torch.ones(2)}}, "last.ckpt")  # same model: accepted
    check_state_matches(lora, {"state_dict": {"policy.w": torch.ones(2)}}, "last.ckpt", strict=False)
