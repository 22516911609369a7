"""Where reference log-probs come from. One rule, in `choose_reference`, for every case:

| case                                            | reference                     | extra memory |
|-------------------------------------------------|-------------------------------|--------------|
| objective without reference (SimPO, SFT)        | `NoReference`                 | 0            |
| batch carries precomputed `ref_logps`           | the cache (any reference)     | 0            |
| peft policy (LoRA/QLoRA), no explicit reference | `AdaptersOff`: policy w/o LoRA | 0            |
| otherwise                                       | `FrozenCopy` of model.reference (default: model.policy) | 1 model |

A reference is never a child module of the LightningModule: it has no gradients, is not in the optimizer and is
never written into checkpoints. The LightningModule forwards device/dtype moves to it (`DAAModule._apply`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from lit_daa.logps import response_logps


class Reference:
    """Base: `logps(batch)` returns (2B,) reference sequence log-probs, or None for reference-free objectives."""

    def logps(self, batch: dict[str, Tensor]) -> Tensor | None:
        if "ref_logps" in batch:  # a precomputed cache always wins: it is what the whole sweep shares
            return batch["ref_logps"]
        with torch.no_grad():
            return self.compute(batch)

    def compute(self, batch: dict[str, Tensor]) -> Tensor | None:
        raise NotImplementedError

    def apply(self, fn: Callable[[Tensor], Tensor]) -> None:
        """Apply a module-level tensor transform (device or dtype move) to whatever this reference holds."""


class NoReference(Reference):
    """For objectives that do not use a reference: nothing is loaded or computed."""

    def logps(self, batch: dict[str, Tensor]) -> Tensor | None:
        return None


class FrozenCopy(Reference):
    """A separately loaded model in eval mode with gradients off (full fine-tuning)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model.eval().requires_grad_(False)

    def compute(self, batch: dict[str, Tensor]) -> Tensor:
        sums, _ = response_logps(self.model, batch["input_ids"], batch["attention_mask"], batch["response_mask"])
        return sums

    def apply(self, fn: Callable[[Tensor], Tensor]) -> None:
        self.model._apply(fn)


class AdaptersOff(Reference):
    """The policy itself with its peft adapters disabled: the base model LoRA was put on."""

    def __init__(self, policy: nn.Module) -> None:
        self.policy = policy

    def compute(self, batch: dict[str, Tensor]) -> Tensor:
        was_training = self.policy.training
        self.policy.eval()  # no dropout in the reference pass
        with self.policy.disable_adapter():
            sums, _ = response_logps(self.policy, batch["input_ids"], batch["attention_mask"], batch["response_mask"])
        self.policy.train(was_training)
        return sums


def is_peft(model: nn.Module) -> bool:
    """True for a peft-wrapped model (it can disable its adapters)."""
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")


def choose_reference(
    requires_reference: bool,
    policy: nn.Module,
    policy_name: str,
    reference_name: str | None,
    load: Callable[[str], nn.Module],
) -> Reference:
    """The one rule: see the module docstring. `load(name)` loads a model when a frozen copy is needed."""
    if not requires_reference:
        return NoReference()
    if reference_name is None and is_peft(policy):
        return AdaptersOff(policy)
    return FrozenCopy(load(reference_name or policy_name))
