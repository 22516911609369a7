"""A sweep killed with SIGKILL in the middle of a subprocess-isolated run resumes that run from its last checkpoint.

The sweep runs as its own process group (the sweep and its `lit-daa fit` child), killed as a whole the way a
scheduler kills a job; the checkpoints written before the kill are kept and not rewritten, and the rerun finishes
the run and the table.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from lit_daa.sweep import Sweep
from lit_daa.sweep.cli import load_config

ROOT = Path(__file__).resolve().parents[1]
STEPS = 60  # 480 pairs in batches of 8


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def sweep_yaml(out_dir: Path) -> dict:
    """An existing reference (nothing to SFT), one DPO run of 60 steps with a Lightning checkpoint every 5 steps."""
    fit = {
        "data.source.init_args.num_train": 480,
        "data.source.init_args.num_val": 16,
        "data.batch_size": 8,
        "trainer.val_check_interval": 1.0,
        "trainer.enable_progress_bar": False,
        "trainer.enable_model_summary": False,
        "checkpoint.every_n_train_steps": 5,
    }
    return {
        "out_dir": str(out_dir),
        "fit": {"configs": [str(ROOT / "configs" / "quickstart.yaml")], "overrides": fit},
        "models": [{"name": "tiny", "reference": "embedded:neox-tiny"}],
        "objectives": [{"objective": "DPO", "betas": [0.1]}],
        "fractions": [0.2, 1.0],
        "evaluation": {"num_prompts": 32, "max_new_tokens": 6, "batch_size": 32, "forward_kl": False},
        "isolation": "subprocess",
    }


def test_killed_run_resumes_from_its_last_checkpoint(tmp_path: Path) -> None:
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump(sweep_yaml(tmp_path / "out")))
    run = tmp_path / "out" / "runs" / "tiny-DPO-beta0.1"
    first = run / "intra_epoch" / "examples_00000096"  # 0.2 of 480 pairs: step 12
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    sweep = subprocess.Popen(
        [sys.executable, "-m", "lit_daa.cli", "sweep", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,  # its own process group: the sweep and its fit child are killed together
    )
    deadline = time.time() + 240
    while not first.is_dir() and sweep.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(sweep.pid, signal.SIGKILL)
    sweep.wait()
    assert first.is_dir(), "the first intra-epoch checkpoint never appeared"
    assert not (run / "FIT_DONE").exists() and not (run / "DONE.json").exists(), "the kill came after the fit ended"
    killed_at = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["global_step"]
    assert 0 < killed_at < STEPS
    first_mtime = (first / "model.safetensors").stat().st_mtime_ns

    # Rerun (in this process, to keep the test short; the resume logic is the same for both runners).
    resumed = Sweep(load_config(config, "--isolation=inprocess"))
    assert resumed.execute() == 0
    assert resumed.fits_started == 1
    attempts = resumed.runs[1].attempts()
    assert [a["resume_from_step"] for a in attempts] == [None, killed_at]
    assert attempts[-1]["returncode"] == 0 and attempts[0]["returncode"] is None  # the killed one never returned
    assert (first / "model.safetensors").stat().st_mtime_ns == first_mtime, "a checkpoint saved before the kill changed"
    table = pd.read_csv(tmp_path / "out" / "results.csv")
    assert list(table.run_id) == ["tiny-sft", "tiny-DPO-beta0.1", "tiny-DPO-beta0.1"]
    assert list(table.step) == [0, 12, STEPS] and list(table.is_final) == [False, False, True]
