"""Bad input around scale (strategies, sharding, 4-bit, epoch geometry) gets one sentence and no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_cli import small  # the quickstart shrunk to a few steps
from torch import nn

from lit_daa.cli import main
from lit_daa.data.resumable import ResumableSampler
from lit_daa.errors import InputError
from lit_daa.sharding import transformer_blocks
from lit_daa.strategies import FSDP2Strategy

ROOT = Path(__file__).resolve().parents[1]


def one_sentence(err: str, sentence: str) -> None:
    lines = [line for line in err.strip().splitlines() if line.startswith("lit-daa: error:")]
    assert len(lines) == 1 and sentence in lines[0], err[-2000:]
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("extra", "sentence"),
    [
        (["--trainer.strategy=fsdp"], "trainer.strategy 'fsdp' is Lightning's FSDP1, which lit-daa does not use"),
        (
            ["--trainer.strategy=lightning.pytorch.strategies.FSDPStrategy"],
            "is Lightning's FSDP1, which lit-daa does not use: shard the policy and the reference with FSDP2",
        ),
        (
            ["--trainer.strategy=lit_daa.strategies.FSDP2Strategy", "--trainer.strategy.replicas=0"],
            "trainer.strategy.replicas must be a whole number of at least 1, got 0",
        ),
        (
            ["--trainer.strategy=lit_daa.strategies.FSDP2Strategy", "--trainer.strategy.replicas=2"],
            "trainer.strategy.replicas 2 must divide the 1 data-parallel ranks (num_nodes x devices)",
        ),
        (
            ["--trainer.val_check_interval=100"],
            "trainer.val_check_interval 100 is longer than the epoch (12 training batches of 8 pairs per device)",
        ),
    ],
)
def test_bad_scale_options_get_one_sentence(tmp_path: Path, capsys, extra: list[str], sentence: str) -> None:
    assert main(small(tmp_path, *extra)) == 2
    one_sentence(capsys.readouterr().err, sentence)
    assert not (tmp_path / "checkpoints").exists()  # refused before any training


def test_4bit_without_bitsandbytes_is_one_sentence(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # what an environment without the package imports
    argv = small(tmp_path, "--config", str(ROOT / "configs" / "presets" / "qlora.yaml"))
    assert main(argv) == 2
    one_sentence(capsys.readouterr().err, "model.quantization needs bitsandbytes, which is not installed")


def test_unknown_block_class_is_one_sentence_from_every_rank_and_no_hang(tmp_path: Path) -> None:
    argv = small(tmp_path, "--trainer.strategy=lit_daa.strategies.FSDP2Strategy", "--trainer.devices=2")
    argv += ["--trainer.accelerator=cpu"]
    argv += ["--trainer.strategy.block_class=NoSuchBlock"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "lit_daa.cli", *argv], capture_output=True, text=True, env=env, timeout=240
    )
    assert run.returncode == 2, run.stderr[-2000:]
    assert "cannot find the transformer blocks of GPTNeoXForCausalLM to shard" in run.stderr
    assert "--trainer.strategy.block_class" in run.stderr and "Traceback" not in run.stderr


def test_a_model_without_block_classes_names_the_option() -> None:
    with pytest.raises(InputError, match="it lists no _no_split_modules.*--trainer.strategy.block_class NAME"):
        transformer_blocks(nn.Sequential(nn.Linear(2, 2)))
    assert len(transformer_blocks(nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2)), "Linear")) == 2


def test_fsdp2_on_an_unsupported_device_is_refused_before_launch() -> None:
    strategy = FSDP2Strategy()
    strategy.parallel_devices = [torch.device("meta")]  # any device type FSDP2 has no backend for here
    with pytest.raises(InputError, match="trainer.strategy fsdp2 runs on CUDA GPUs or CPUs, not on 'meta'"):
        strategy._configure_launcher()


def test_mid_epoch_resume_on_another_number_of_ranks_is_refused() -> None:
    rows = list(range(40))
    two = ResumableSampler(rows, batch_size=4, num_replicas=2, rank=0)
    two.begin_iteration()
    two.count_batch(1)
    one = ResumableSampler(rows, batch_size=4, num_replicas=1, rank=0)
    with pytest.raises(InputError, match="20 rows per device on 2 device.*40 rows per device on 1 device"):
        one.load_state_dict(two.state_dict())


def test_fewer_pairs_than_ranks_is_refused() -> None:
    with pytest.raises(InputError, match="the training data has 1 pairs, fewer than the 2 data-parallel ranks"):
        ResumableSampler([0], batch_size=1, num_replicas=2, rank=0)
