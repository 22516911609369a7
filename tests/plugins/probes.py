"""Callbacks that the distributed tests pass to the real CLI (`--trainer.callbacks+=...`): they observe or end a
run from inside each rank's process."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer


class ShardProbe(Callback):
    """At the start of training, write what each rank holds of the policy and the reference to `<dir>/rank<r>.json`.

    Args:
        out_dir: where to write.
    """

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        from torch.distributed.fsdp import FSDPModule
        from torch.distributed.tensor import DTensor

        def describe(model) -> dict:
            params = list(model.parameters())
            return {
                "fsdp_units": sum(isinstance(m, FSDPModule) for m in model.modules()),
                "root_is_fsdp": isinstance(model, FSDPModule),
                "all_dtensor": all(isinstance(p, DTensor) for p in params),
                "local_numel": sum(p.to_local().numel() if isinstance(p, DTensor) else p.numel() for p in params),
                "full_numel": sum(p.numel() for p in params),
                "trainable": sum(p.requires_grad for p in params),
                # ["Replicate", "Shard"] under HSDP, ["Shard"] under plain FSDP2
                "placements": [type(x).__name__ for x in getattr(params[0], "placements", ())],
            }

        info = {"policy": describe(pl_module.policy), "reference": describe(pl_module.reference.model)}
        Path(self.out_dir).mkdir(parents=True, exist_ok=True)
        (Path(self.out_dir) / f"rank{trainer.global_rank}.json").write_text(json.dumps(info))


class KillAtStep(Callback):
    """SIGKILL this process once `global_step` reaches `step` (every rank does, as a scheduler's kill would).

    Args:
        step: the optimizer step after which the process dies, before any checkpoint of that step.
    """

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: Trainer, *args: object) -> None:
        # Checkpoint callbacks run after every other callback, so the kill lands before this step is saved.
        if trainer.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)
