"""Learning-rate schedules picked by `class_path` under `model.lr_scheduler`."""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from lit_daa.errors import InputError


class LinearWarmup(LambdaLR):
    """Linear warm-up over `warmup_steps` optimizer steps, then constant (the DPO reference code's schedule).

    The factor at step s is min(1, (s + 1) / (warmup_steps + 1)).
    """

    def __init__(self, optimizer: Optimizer, warmup_steps: int = 150) -> None:
        if warmup_steps < 0:
            raise InputError(f"model.lr_scheduler warmup_steps must be >= 0, got {warmup_steps}")
        self.warmup_steps = warmup_steps
        super().__init__(optimizer, lambda step: min(1.0, (step + 1) / (warmup_steps + 1)))
