"""A Lightning callback for `lit-daa fit` benchmarks: per-step times, tokens and peak memory, written as JSON.

Passed to the real CLI with `--trainer.callbacks+={"class_path": "fit_probe.FitProbe", ...}` (benchmarks/ on
PYTHONPATH), so what is measured is exactly what a user's `lit-daa fit` runs.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from lit_daa.layouts import real_tokens


class FitProbe(Callback):
    """Record each optimizer step's wall time and real tokens; write `out` (rank 0) when training ends.

    Args:
        out: JSON file to write.
        kill_at: SIGKILL every rank once this global step is done (before it is checkpointed), to test a resume.
    """

    def __init__(self, out: str, kill_at: int | None = None) -> None:
        self.out, self.kill_at = out, kill_at
        self.step_s: list[float] = []
        self.tokens: list[int] = []
        self._t0 = 0.0
        self._start = time.perf_counter()

    def _sync(self, trainer: Trainer) -> None:
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize()

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        self._sync(trainer)
        self._t0 = time.perf_counter()
        # real tokens of the [chosen; rejected] rows on this rank, times the data-parallel ranks
        self.tokens.append(int(real_tokens(batch)) * trainer.world_size)

    def on_train_batch_end(self, trainer: Trainer, *args: Any) -> None:
        self._sync(trainer)
        self.step_s.append(time.perf_counter() - self._t0)
        if self.kill_at is not None and trainer.global_step >= self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        params = list(pl_module.policy.parameters())
        cuda = trainer.strategy.root_device.type == "cuda"
        report = {
            "step_s": self.step_s,
            "tokens": self.tokens,
            "first_step": trainer.global_step - len(self.step_s) + 1,
            "world_size": trainer.world_size,
            "policy_parameters": _numel(pl_module.policy),
            "trainable_parameters": sum(_local_numel(p) for p in params if p.requires_grad) * trainer.world_size,
            "peak_memory_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
            "device": torch.cuda.get_device_name(0) if cuda else "cpu",
            "wall_s": time.perf_counter() - self._start,
        }
        Path(self.out).write_text(json.dumps(report))


def _local_numel(p: torch.Tensor) -> int:
    return p.to_local().numel() if hasattr(p, "to_local") else p.numel()


def _numel(model: torch.nn.Module) -> int:
    """Full parameter count (a sharded DTensor reports its global shape; a 4-bit weight its unpacked size)."""
    total = 0
    for p in model.parameters():
        state = getattr(p, "quant_state", None)
        total += int(torch.Size(state.shape).numel()) if state is not None else p.numel()
    return total
