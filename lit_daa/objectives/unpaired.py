"""The interface of objectives that learn from unpaired feedback: single completions labelled desirable or not.

A batch of B unpaired rows is scored as B (prompt, completion) sequences plus, for the KL reference point of KTO,
B mismatched sequences: each row's prompt with another row's completion. `RowLogps` holds their sequence
log-probabilities (the sibling of `PairLogps`), `RowOutput` what an unpaired objective returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.distributed as dist
from torch import Tensor

from lit_daa.errors import InputError
from lit_daa.objectives.base import Objective


@dataclass
class RowLogps:
    """Sequence log-probabilities of B unpaired rows and of their B mismatched (KL) sequences.

    Attributes:
        policy: (B,) log pi(y|x) of each row's completion.
        ref: (B,) the same under the reference, or None.
        kl_policy: (B,) log pi(y'|x), y' the completion of another row of the batch.
        kl_ref: (B,) the same under the reference, or None.
        label: (B,) bool, True for a desirable completion.
        tokens: (B,) number of completion tokens (float).
    """

    policy: Tensor
    ref: Tensor | None
    kl_policy: Tensor
    kl_ref: Tensor | None
    label: Tensor
    tokens: Tensor

    @classmethod
    def from_rows(cls, sums: Tensor, counts: Tensor, ref: Tensor | None, label: Tensor) -> RowLogps:
        """Split (2B,) per-sequence values [completions; mismatched completions] of an unpaired batch.

        Args:
            sums: (2B,) policy sequence log-probs.
            counts: (2B,) completion token counts.
            ref: (2B,) reference sequence log-probs (cast to `sums`' dtype), or None.
            label: (B,) bool.
        """
        b = sums.shape[0] // 2
        ref = None if ref is None else ref.to(sums.dtype)
        return cls(
            policy=sums[:b],
            ref=None if ref is None else ref[:b],
            kl_policy=sums[b:],
            kl_ref=None if ref is None else ref[b:],
            label=label.bool(),
            tokens=counts[:b],
        )

    def log_ratios(self) -> Tensor:
        """(B,) log pi(y|x)/pi_ref(y|x) of each row's completion."""
        if self.ref is None:
            raise ValueError("this objective needs reference log-probs, but none were given")
        return self.policy - self.ref

    def kl_estimate(self) -> Tensor:
        """The reference point z0 of KTO: max(0, mean over the mismatched sequences of log pi/pi_ref), detached.

        As in the KTO paper and TRL, it is an estimate of KL(pi || pi_ref) from completions that do not answer their
        prompt, averaged over every data-parallel rank's batch, and never differentiated.
        """
        if self.kl_ref is None:
            raise ValueError("the KL estimate needs reference log-probs, but none were given")
        kl = (self.kl_policy - self.kl_ref).detach().mean()
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(kl)  # the mean of the ranks' means, as TRL's gather
            kl = kl / dist.get_world_size()
        return kl.clamp(min=0)


@dataclass
class RowOutput:
    """What an unpaired objective returns for B rows.

    Attributes:
        loss: scalar, the mean of `losses`.
        losses: (B,) per-row loss (desirable and undesirable weights applied), differentiable.
        rewards: (B,) implicit reward of each row's completion, detached.
        kl: scalar, the KL estimate the objective used, detached; None for objectives without one.
        parts: scalar losses of a composed objective's parts, by name (none here).
    """

    loss: Tensor
    losses: Tensor
    rewards: Tensor
    kl: Tensor | None = None
    parts: dict[str, Tensor] = field(default_factory=dict)


class UnpairedObjective(Objective):
    """Base class: subclasses implement `forward(RowLogps) -> RowOutput`.

    It trains on unpaired rows (`--data.unpaired true`), which the scoring path sees from `unpaired`.

    Args:
        beta: the KL-constraint strength (> 0).
    """

    unpaired: ClassVar[bool] = True

    def row_rewards(self, rows: RowLogps) -> Tensor:
        """(B,) implicit rewards beta * log pi(y|x)/pi_ref(y|x), detached."""
        return (self.beta * rows.log_ratios()).detach()

    def _row_output(self, losses: Tensor, rows: RowLogps, kl: Tensor | None = None) -> RowOutput:
        return RowOutput(losses.mean(), losses, self.row_rewards(rows), None if kl is None else kl.detach())


class WeightedRows(UnpairedObjective):
    """An unpaired objective that weighs desirable and undesirable rows' losses (KTO, APO-zero unpaired).

    Args:
        beta: KL-constraint strength (> 0).
        desirable_weight: lambda_D (> 0), the weight of a desirable row's loss.
        undesirable_weight: lambda_U (> 0), the weight of an undesirable row's loss.
    """

    def __init__(self, beta: float = 0.1, desirable_weight: float = 1.0, undesirable_weight: float = 1.0) -> None:
        super().__init__(beta)
        self.desirable_weight = check_weight("desirable_weight", desirable_weight)
        self.undesirable_weight = check_weight("undesirable_weight", undesirable_weight)

    def weighted(self, rows: RowLogps, desirable: Tensor, undesirable: Tensor) -> Tensor:
        """(B,) each row's loss: lambda_D * `desirable` on desirable rows, lambda_U * `undesirable` on the others."""
        return torch.where(rows.label, self.desirable_weight * desirable, self.undesirable_weight * undesirable)

    def extra_repr(self) -> str:
        return (
            f"beta={self.beta}, desirable_weight={self.desirable_weight}, undesirable_weight={self.undesirable_weight}"
        )


def check_weight(name: str, value: float) -> float:
    """Validate a desirable/undesirable weight (> 0) and name it in the error."""
    if not value > 0:
        raise InputError(f"objective option {name} must be > 0, got {value}")
    return float(value)


__all__ = ["RowLogps", "RowOutput", "UnpairedObjective", "WeightedRows", "check_weight"]
