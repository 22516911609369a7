"""IntraEpochCheckpoints: Hugging Face checkpoints at fractions of the run (one epoch or several), also across a
resume."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from lit_daa.checkpoints import EpochGeometry, IntraEpochCheckpoints, list_checkpoints
from lit_daa.cli import main
from lit_daa.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
CALLBACK = "lit_daa.checkpoints.IntraEpochCheckpoints"


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """One intra-op thread: as fast for these tiny models, and immune to OpenMP spin-waits on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def fit_args(root: Path, *extra: str) -> list[str]:
    """64 training pairs in batches of 8: one epoch is 8 optimizer steps."""
    return [
        "fit",
        "--config",
        str(ROOT / "configs" / "quickstart.yaml"),
        f"--trainer.default_root_dir={root}",
        f"--trainer.logger.init_args.save_dir={root}",
        "--trainer.val_check_interval=8",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--data.source.init_args.num_train=64",
        "--data.source.init_args.num_val=16",
        "--data.batch_size=8",
        f"--trainer.callbacks+={CALLBACK}",
        *extra,
    ]


@pytest.mark.parametrize(
    ("geometry", "expected"),
    [
        # 64 pairs, 8 per step: 12.8 pairs -> step 2 (16 pairs), 25.6 -> 4, 38.4 -> 5, 51.2 -> 7, all -> 8
        (EpochGeometry(64, 8, 8), [2, 4, 5, 7, 8]),
        # 480 pairs, 8 per step: 0.2 * 480 = 96 exactly (despite float rounding) -> step 12
        (EpochGeometry(480, 8, 60), [12, 24, 36, 48, 60]),
        # 100 pairs, 32 per step (4 steps, the last one short): 20 -> 1, 40 -> 2, 60 -> 2, 80 -> 3, 100 -> 4
        (EpochGeometry(100, 32, 4), [1, 2, 2, 3, 4]),
    ],
)
def test_steps_for_the_default_fractions(geometry: EpochGeometry, expected: list[int]) -> None:
    fractions = IntraEpochCheckpoints().fractions
    assert [geometry.step_for(f) for f in fractions] == expected
    final = geometry.info(geometry.steps_per_epoch)
    assert final.is_final and final.examples_seen == geometry.epoch_pairs and final.epoch_fraction == 1.0


@pytest.mark.parametrize(
    ("geometry", "expected_steps", "expected_seen"),
    [
        # 4 epochs of 16 pairs, 8 per step (2 steps an epoch): the same steps and pair counts as 1 epoch of 64
        (EpochGeometry(16, 8, 2, epochs=4), [2, 4, 5, 7, 8], [16, 32, 40, 56, 64]),
        # 2 epochs of 100 pairs, 32 per step, each epoch's 4th step short (4 pairs): pairs seen after steps 1..8 are
        # 32, 64, 96, 100, 132, 164, 196, 200; 0.2 x 200 = 40 -> step 2, 80 -> 3, 120 -> 5, 160 -> 6, 200 -> 8
        (EpochGeometry(100, 32, 4, epochs=2), [2, 3, 5, 6, 8], [64, 96, 132, 164, 200]),
    ],
)
def test_fractions_refer_to_the_whole_multi_epoch_run(
    geometry: EpochGeometry, expected_steps: list[int], expected_seen: list[int]
) -> None:
    steps = [geometry.step_for(f) for f in IntraEpochCheckpoints().fractions]
    assert steps == expected_steps
    infos = [geometry.info(step) for step in steps]
    assert [info.examples_seen for info in infos] == expected_seen
    assert [info.epoch_fraction for info in infos] == [seen / geometry.run_pairs for seen in expected_seen]
    assert [info.is_final for info in infos] == [False] * 4 + [True]
    assert all(info.epochs == geometry.epochs for info in infos)
    # a fraction on an epoch boundary lands on that epoch's last step: 0.25 of 4 x 16 pairs = the first epoch
    assert EpochGeometry(16, 8, 2, epochs=4).step_for(0.25) == 2


@pytest.mark.parametrize("fractions", [[], [0.0], [1.5], [-0.2, 0.5]])
def test_fractions_outside_the_epoch_are_refused(fractions: list[float]) -> None:
    with pytest.raises(InputError, match="in \\(0, 1\\]"):
        IntraEpochCheckpoints(fractions=fractions)


def test_saves_loadable_checkpoints_at_the_fractions(tmp_path: Path) -> None:
    assert main(fit_args(tmp_path)) == 0
    found = list_checkpoints(tmp_path / "intra_epoch")
    assert [p.name for p, _ in found] == [f"examples_{n:08d}" for n in (16, 32, 40, 56, 64)]
    assert [info.step for _, info in found] == [2, 4, 5, 7, 8]
    assert [info.is_final for _, info in found] == [False] * 4 + [True]
    assert [info.epoch_fraction for _, info in found] == [0.25, 0.5, 0.625, 0.875, 1.0]
    assert json.loads((found[0][0] / "checkpoint.json").read_text())["examples_seen"] == 16
    AutoModelForCausalLM.from_pretrained(str(found[0][0]))  # loads like any Hugging Face checkpoint
    first = load_file(found[0][0] / "model.safetensors")
    # the end-of-epoch checkpoint is the exported policy; an early one differs from it
    final = load_file(found[-1][0] / "model.safetensors")
    exported = load_file(tmp_path / "hf_policy" / "model.safetensors")
    assert all(torch.equal(final[k], exported[k]) for k in exported)
    assert any(not torch.equal(first[k], exported[k]) for k in exported)
    assert (found[0][0] / "tokenizer.json").exists() or (found[0][0] / "tokenizer_config.json").exists()
    assert not list((tmp_path / "intra_epoch").glob(".staging-*"))


def test_a_quarter_of_the_pairs_for_four_epochs_checkpoints_at_the_same_steps(tmp_path: Path) -> None:
    """The data-quantity control: 16 pairs x 4 epochs is 8 steps, as 64 pairs x 1 epoch (see the test above)."""
    argv = fit_args(
        tmp_path,
        "--data.source.init_args.num_train=16",
        "--trainer.max_epochs=4",
        "--trainer.val_check_interval=1.0",  # an epoch is 2 batches here, fewer than the 8 fit_args validates after
    )
    assert main(argv) == 0
    found = list_checkpoints(tmp_path / "intra_epoch")
    assert [info.step for _, info in found] == [2, 4, 5, 7, 8]
    assert [info.examples_seen for _, info in found] == [16, 32, 40, 56, 64]
    assert [info.epoch_fraction for _, info in found] == [0.25, 0.5, 0.625, 0.875, 1.0]
    assert [info.is_final for _, info in found] == [False] * 4 + [True]
    assert {(info.epoch_pairs, info.epochs) for _, info in found} == {(16, 4)}
    final = load_file(found[-1][0] / "model.safetensors")
    exported = load_file(tmp_path / "hf_policy" / "model.safetensors")
    assert all(torch.equal(final[k], exported[k]) for k in exported)  # the last checkpoint is the end of the run


def test_gradient_accumulation_counts_pairs_per_optimizer_step(tmp_path: Path) -> None:
    assert main(fit_args(tmp_path, "--trainer.accumulate_grad_batches=2", "--trainer.callbacks.dirname=ckpts")) == 0
    found = list_checkpoints(tmp_path / "ckpts")
    # 16 pairs per step, 4 steps: 0.8 and 1.0 of the epoch both land on step 4
    assert [(info.step, info.examples_seen) for _, info in found] == [(1, 16), (2, 32), (3, 48), (4, 64)]


def mtimes(folder: Path) -> dict[str, int]:
    return {p.name: (p / "model.safetensors").stat().st_mtime_ns for p, _ in list_checkpoints(folder)}


def test_resume_saves_only_the_missing_checkpoints(tmp_path: Path) -> None:
    assert main(fit_args(tmp_path, "--trainer.max_steps=5", "--checkpoint.every_n_train_steps=5")) == 0
    before = mtimes(tmp_path / "intra_epoch")
    assert sorted(before) == [f"examples_{n:08d}" for n in (16, 32, 40)]
    assert main(fit_args(tmp_path, "--ckpt_path=last")) == 0
    after = mtimes(tmp_path / "intra_epoch")
    assert sorted(after) == [f"examples_{n:08d}" for n in (16, 32, 40, 56, 64)]
    assert all(after[name] == mtime for name, mtime in before.items()), "existing checkpoints were rewritten"


def test_lora_policy_is_saved_merged_with_its_adapters_beside(tmp_path: Path) -> None:
    pytest.importorskip("peft")
    lora = str(ROOT / "configs" / "presets" / "lora.yaml")
    argv = fit_args(tmp_path, "--config", lora, "--trainer.max_steps=2", "--trainer.callbacks.fractions=[0.25]")
    assert main(argv) == 0
    ((folder, info),) = list_checkpoints(tmp_path / "intra_epoch")
    assert info.step == 2 and folder.name == "examples_00000016"
    assert (folder.with_name(folder.name + "-adapter") / "adapter_config.json").exists()
    model = AutoModelForCausalLM.from_pretrained(str(folder))  # merged: loads without peft
    assert not any("lora" in k for k in model.state_dict())
