"""A quiet console: no third-party tips or deprecation notices in a normal run; --verbose shows them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(tmp_path: Path, *extra: str) -> str:
    command = [sys.executable, "-m", "lit_daa.cli", "fit", "--config", str(ROOT / "configs" / "quickstart.yaml")]
    command += [f"--trainer.default_root_dir={tmp_path}", "--trainer.max_steps=3", "--trainer.val_check_interval=3"]
    command += ["--config", str(ROOT / "configs" / "presets" / "lora.yaml"), *extra]
    env = {k: v for k, v in os.environ.items() if k not in ("LIT_DAA_VERBOSE", "PYTHONWARNINGS")}
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, env={**env, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout + done.stderr


def test_normal_runs_are_quiet_and_verbose_shows_everything(tmp_path: Path) -> None:
    out = run(tmp_path / "quiet")
    for noise in ("Tip:", "LeafSpec", "is deprecated", "gemm_4bit_forward", "module(s) in eval mode"):
        assert noise not in out, noise
    assert "lit-daa: fit finished" in out and "held-out implicit-reward accuracy" in out
    loud = run(tmp_path / "loud", "--verbose")
    assert "Tip:" in loud and "LeafSpec" in loud
