"""Exact resume: a run killed with SIGKILL mid-epoch and resumed with --ckpt_path last ends where an
uninterrupted run with the same seed ends (weights and final validation metrics)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
STEPS = 120  # one epoch: 960 pairs / 8; long enough that the kill lands mid-epoch on a fast machine


def command(root: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "lit_daa.cli",
        "fit",
        "--config",
        str(ROOT / "configs" / "quickstart.yaml"),
        f"--trainer.default_root_dir={root}",
        f"--trainer.logger.init_args.save_dir={root}",
        "--trainer.val_check_interval=60",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--checkpoint.every_n_train_steps=7",
        "--data.source.init_args.num_train=960",
        "--data.source.init_args.num_val=64",
        "--data.batch_size=8",
        *extra,
    ]


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def final_metrics(stdout: str) -> dict[str, str]:
    return dict(
        re.findall(r"^\s+(held-out implicit-reward accuracy|val/loss|val/rewards/margins): (\S+)$", stdout, re.M)
    )


def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path: Path) -> None:
    straight = subprocess.run(command(tmp_path / "a"), capture_output=True, text=True, env=env(), timeout=300)
    assert straight.returncode == 0, straight.stderr[-2000:]

    # Interrupted run: kill -9 as soon as a mid-epoch checkpoint exists.
    last = tmp_path / "b" / "checkpoints" / "last.ckpt"
    proc = subprocess.Popen(command(tmp_path / "b"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env())
    deadline = time.time() + 240
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.05)  # let it train past the checkpoint, so work after it is really lost
    assert proc.poll() is None, "the run ended before it could be killed mid-epoch"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_at = torch.load(last, weights_only=False)["global_step"]
    assert 0 < killed_at < STEPS, f"the kill must land mid-epoch, checkpoint step was {killed_at}"
    assert not (tmp_path / "b" / "hf_policy").exists()

    resumed = subprocess.run(
        command(tmp_path / "b", "--ckpt_path=last"), capture_output=True, text=True, env=env(), timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"global step: {STEPS}" in resumed.stdout and f"global step: {STEPS}" in straight.stdout

    a = load_file(tmp_path / "a" / "hf_policy" / "model.safetensors")
    b = load_file(tmp_path / "b" / "hf_policy" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs after resume from step {killed_at}"
    assert final_metrics(straight.stdout) == final_metrics(resumed.stdout)
    assert len(final_metrics(straight.stdout)) == 3
