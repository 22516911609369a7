"""TR-DPO (Gorbatovski et al. 2024, "Learn Your Reference Model for Real Good Alignment"): a reference that moves.

Every `tau` optimizer steps the frozen reference is pulled toward the policy, parameter by parameter:
pi_ref <- alpha * pi_theta + (1 - alpha) * pi_ref (alpha = 1: the hard update, a copy). While this callback is on,
the reference is part of the model's checkpoint (sharded like the policy under FSDP2), so a resumed run continues
from the moved reference exactly.
"""

from __future__ import annotations

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from lit_daa.errors import InputError
from lit_daa.reference import FrozenCopy


class MovingReference(Callback):
    """Soft (alpha < 1) or hard (alpha = 1) reference updates every `tau` optimizer steps.

    Needs a reference model of its own (a `FrozenCopy` with the policy's architecture): a cached reference or a
    LoRA policy's adapters-off reference cannot move, and is refused in one sentence.

    Args:
        tau: optimizer steps between updates (> 0).
        alpha: the mixing weight of the policy, in (0, 1].
    """

    def __init__(self, tau: int = 64, alpha: float = 0.6) -> None:
        if tau < 1:
            raise InputError(f"MovingReference tau must be at least 1, got {tau}")
        if not 0.0 < alpha <= 1.0:
            raise InputError(f"MovingReference alpha must be in (0, 1], got {alpha}")
        self.tau, self.alpha = tau, float(alpha)
        self.updates = 0

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        # before configure_model builds the reference: it is then saved and restored with the policy
        pl_module.persist_reference = True

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        reference = pl_module.reference
        if not isinstance(reference, FrozenCopy):
            why = {
                "CachedReference": "its log-probs are cached, so there is no model to move",
                "AdaptersOff": "a LoRA policy's reference is its own base weights with adapters off",
                "NoReference": "the objective uses no reference",
            }.get(type(reference).__name__, f"the reference is a {type(reference).__name__}")
            raise InputError(f"MovingReference (TR-DPO) needs a reference model of its own, but {why}")
        policy = dict(pl_module.policy.named_parameters())
        ref = dict(reference.model.named_parameters())
        if policy.keys() != ref.keys() or any(policy[k].shape != ref[k].shape for k in policy):
            raise InputError("MovingReference (TR-DPO) needs a reference with the policy's architecture")

    @torch.no_grad()
    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: object) -> None:
        step = trainer.global_step
        if step == 0 or step % self.tau or step == getattr(self, "_last", None):
            return
        self._last = step  # global_step only moves on optimizer steps; skip the other micro-batches
        for ref, pol in zip(pl_module.reference.model.parameters(), pl_module.policy.parameters(), strict=True):
            ref.lerp_(pol.to(ref.dtype), self.alpha)  # works on FSDP2 shards: both models are sharded alike
        self.updates += 1
