"""Where reference log-probs come from. One rule, in `choose_reference`, for every case:

| case                                            | reference                                   | extra memory      |
|-------------------------------------------------|---------------------------------------------|-------------------|
| objective without reference (SimPO, SFT)        | `NoReference`                               | 0                 |
| precomputed cache (`model.cached_reference`)    | `CachedReference`: no model                 | 0                 |
| peft policy (LoRA/QLoRA), no explicit reference | `AdaptersOff`: the policy without LoRA      | 0                 |
| otherwise                                       | `FrozenCopy` of model.reference (or policy) | 1 model (sharded) |

A batch that carries precomputed `ref_logps` uses them in every case that needs a reference.

A policy (or reference) named by a LoRA adapter folder, an SFT adapter say, is loaded as its base with the adapter
merged in (`lit_daa.models.merge_adapter`), so in every row above the SFT model is the reference, never the bare base:
with `model.lora`, "adapters off" turns off only the fresh adapters trained on top of it.

Every reference is an `nn.Module` child of the LightningModule, so strategies see it: they move it with the
policy, and `configure_model` shards a frozen copy with FSDP2 like the policy. It is still never trained nor
saved: its parameters have no gradients (so they are in no optimizer), `train()` leaves it in eval mode, and
`state_dict()` leaves it out, so checkpoints hold the policy only (`DAAModule` drops the reference's keys from
the missing keys when a checkpoint is loaded).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from lit_daa.errors import InputError
from lit_daa.logps import TokenScores, batch_token_scores, response_logps


class Reference(nn.Module):
    """Base: `logps(batch)` returns (2B,) reference sequence log-probs, or None for reference-free objectives."""

    def logps(self, batch: dict[str, Tensor]) -> Tensor | None:
        """(2B,) reference sequence log-probs, or None."""
        return self.scores(batch)[0]

    def scores(self, batch: dict[str, Tensor]) -> tuple[Tensor | None, Tensor | None]:
        """(2B,) sequence log-probs and (K,) per-token log-probs (None where only sums exist, e.g. a cache)."""
        if "ref_logps" in batch:  # a precomputed cache always wins: it is what the whole sweep shares
            return batch["ref_logps"], None
        with torch.no_grad():
            token = self.compute(batch)
        return token.sums(batch), token.logps

    def compute(self, batch: dict[str, Tensor]) -> TokenScores:
        raise NotImplementedError

    def sequence_logps(self, input_ids: Tensor, attention_mask: Tensor, response_mask: Tensor) -> Tensor:
        """(N,) reference log-probs of right-padded (prompt, response) rows (`logps.right_pad`): how sampled
        answers are scored, e.g. for the validation-time KL. Only references that hold a model can."""
        raise InputError(
            f"this run's reference ({type(self).__name__}) holds no model to score new samples with, so the "
            "validation-time KL cannot be estimated (it needs a reference model: not model.cached_reference, not a "
            "reference-free objective)"
        )

    def shardable(self) -> nn.Module | None:
        """The model a sharding strategy should shard, if this reference holds one of its own."""
        return None

    def train(self, mode: bool = True) -> Reference:
        # The reference never trains: Trainer and user calls of .train() leave it (and its dropout) in eval mode.
        return super().train(False)

    # True only while the reference moves (TR-DPO, `lit_daa.moving_reference`): then it must be saved to resume
    persistent: bool = False

    def state_dict(self, *args: Any, destination: Any = None, prefix: str = "", keep_vars: bool = False) -> Any:
        if self.persistent:
            return super().state_dict(*args, destination=destination, prefix=prefix, keep_vars=keep_vars)
        # Not checkpointed: the reference is reloaded from its checkpoint name, so nothing of it is written.
        return OrderedDict() if destination is None else destination


class NoReference(Reference):
    """For objectives that do not use a reference: nothing is loaded or computed."""

    def scores(self, batch: dict[str, Tensor]) -> tuple[Tensor | None, Tensor | None]:
        return None, None


class CachedReference(Reference):
    """Reference log-probs precomputed once and carried by every batch (`ref_logps`): no model is loaded."""

    def compute(self, batch: dict[str, Tensor]) -> TokenScores:
        raise InputError(
            "model.cached_reference is set, but the batch carries no reference log-probs (the data needs "
            "ref_chosen_logps and ref_rejected_logps columns)"
        )


class FrozenCopy(Reference):
    """A separately loaded model in eval mode with gradients off (full fine-tuning)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.requires_grad_(False)
        self.train(False)

    def compute(self, batch: dict[str, Tensor]) -> TokenScores:
        return batch_token_scores(self.model, batch)

    def sequence_logps(self, input_ids: Tensor, attention_mask: Tensor, response_mask: Tensor) -> Tensor:
        with torch.no_grad():
            return response_logps(self.model, input_ids, attention_mask, response_mask)[0]

    def shardable(self) -> nn.Module:
        return self.model


class AdaptersOff(Reference):
    """The policy itself with its peft adapters disabled: the base model LoRA was put on."""

    def __init__(self, policy: nn.Module) -> None:
        super().__init__()
        # Held outside the module tree: the policy is the LightningModule's child already and must stay trainable.
        self.__dict__["policy"] = policy

    def compute(self, batch: dict[str, Tensor]) -> TokenScores:
        policy = self.__dict__["policy"]
        was_training = policy.training
        policy.eval()  # no dropout in the reference pass
        with policy.disable_adapter():
            scores = batch_token_scores(policy, batch)
        policy.train(was_training)
        return scores

    def sequence_logps(self, input_ids: Tensor, attention_mask: Tensor, response_mask: Tensor) -> Tensor:
        policy = self.__dict__["policy"]
        with torch.no_grad(), policy.disable_adapter():
            return response_logps(policy, input_ids, attention_mask, response_mask)[0]


def is_peft(model: nn.Module) -> bool:
    """True for a peft-wrapped model (it can disable its adapters)."""
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")


def choose_reference(
    requires_reference: bool,
    policy: nn.Module,
    policy_name: str,
    reference_name: str | None,
    load: Callable[[str], nn.Module],
    cached: bool = False,
) -> Reference:
    """The one rule: see the module docstring. `load(name)` loads a model when a frozen copy is needed."""
    if not requires_reference:
        return NoReference()
    if cached:
        return CachedReference()
    if reference_name is None and is_peft(policy):
        return AdaptersOff(policy)
    return FrozenCopy(load(reference_name or policy_name))
