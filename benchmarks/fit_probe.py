"""A Lightning callback for `lit-daa fit` benchmarks: per-step times, tokens, losses and peak memory, as JSON.

Memory is taken on every rank, twice: when training starts (after `configure_model` loaded and sharded the models:
the loading peak) and at the end (over the whole fit): the host's peak resident set (`ru_maxrss`) and, on CUDA,
`torch.cuda.max_memory_allocated`; rank 0 writes every rank's numbers.

Passed to the real CLI with `--trainer.callbacks+={"class_path": "fit_probe.FitProbe", ...}` (benchmarks/ on
PYTHONPATH), so what is measured is exactly what a user's `lit-daa fit` runs.
"""

from __future__ import annotations

import json
import os
import resource
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
        self.losses: list[float] = []
        self.loaded: list[float] = []  # [host MiB, device MiB] when training starts
        self._t0 = 0.0
        self._start = time.perf_counter()

    def _sync(self, trainer: Trainer) -> None:
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize()

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.loaded = _memory_mib(trainer)

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        self._sync(trainer)
        self._t0 = time.perf_counter()
        # real tokens of the [chosen; rejected] rows on this rank, times the data-parallel ranks
        self.tokens.append(int(real_tokens(batch)) * trainer.world_size)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, *args: Any) -> None:
        self._sync(trainer)
        self.step_s.append(time.perf_counter() - self._t0)
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        self.losses.append(float(loss) if loss is not None else float("nan"))  # this rank's loss (its own rows)
        if self.kill_at is not None and trainer.global_step >= self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        mine = torch.tensor(
            self.loaded + _memory_mib(trainer), dtype=torch.float64, device=trainer.strategy.root_device
        )
        ranks = trainer.strategy.all_gather(mine).reshape(-1, 4).tolist()  # collective: every rank takes part
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
            # a DTensor's numel is its global one (replicated or sharded alike)
            "trainable_parameters": sum(p.numel() for p in params if p.requires_grad),
            "peak_memory_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
            "losses": self.losses,
            # per rank: host peak RSS and device peak allocated (MiB) once loaded, then over the whole fit
            "memory_per_rank": [
                {"loaded_host": r[0], "loaded_device": r[1], "peak_host": r[2], "peak_device": r[3]} for r in ranks
            ],
            "device": torch.cuda.get_device_name(0) if cuda else "cpu",
            "wall_s": time.perf_counter() - self._start,
        }
        Path(self.out).write_text(json.dumps(report))


def _memory_mib(trainer: Trainer) -> list[float]:
    """[peak host RSS, peak device memory allocated] of this process so far, in MiB (device 0 on the CPU)."""
    host = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    cuda = trainer.strategy.root_device.type == "cuda"
    return [host, torch.cuda.max_memory_allocated() / 2**20 if cuda else 0.0]


def _numel(model: torch.nn.Module) -> int:
    """Full parameter count: a sharded DTensor reports its global shape, and a bitsandbytes 4-bit weight (packed, or
    sharded rows of it under FSDP2) the shape its layer's `quant_state` unpacks it to."""
    total, seen = 0, set()
    for module in model.modules():
        state = getattr(module, "quant_state", None)  # set on a bitsandbytes 4-bit layer
        for name, p in module.named_parameters(recurse=False):
            if id(p) in seen:  # tied weights count once
                continue
            seen.add(id(p))
            unpacked = name == "weight" and hasattr(state, "shape")
            total += int(torch.Size(state.shape).numel()) if unpacked else p.numel()
    return total
