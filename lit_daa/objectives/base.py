"""The objective interface shared by every Direct Alignment Algorithm.

Objectives act on tensors, never on models: they receive per-pair sequence log-probabilities (and token
counts) and return the loss, the per-pair losses and the implicit rewards. The same classes therefore serve
the Lightning module, the precomputed-reference path and the tabular toy MDP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor, nn

from lit_daa.errors import InputError


@dataclass
class PairTokens:
    """Per-token log-probs of a batch's 2B responses, K scored tokens in all (for token-level objectives).

    Attributes:
        seq: (K,) the response each token belongs to: pair j's chosen is j, its rejected B + j.
        pos: (K,) the token's position in its response (0 for the first).
        policy: (K,) log pi(token | prefix), differentiable.
        collision: (K,) log sum_v pi(v | prefix)^2 under the policy, detached (WPO's normaliser); None unless the
            objective sets `needs_collision`.
        ref: (K,) log pi_ref(token | prefix), or None (a cached reference keeps sums only).
    """

    seq: Tensor
    pos: Tensor
    policy: Tensor
    collision: Tensor | None
    ref: Tensor | None

    def sums(self, values: Tensor, num_sequences: int, weights: Tensor | None = None) -> Tensor:
        """(2B,) per-response sums of (K,) `values`, each token times its weight when given."""
        out = torch.zeros(num_sequences, dtype=values.dtype, device=values.device)
        return out.index_add(0, self.seq, values if weights is None else values * weights)


@dataclass
class PairLogps:
    """Sequence log-probabilities of a batch of B preference pairs.

    Attributes:
        policy_chosen: (B,) sum over response tokens of log pi(y_w | x).
        policy_rejected: (B,) sum over response tokens of log pi(y_l | x).
        ref_chosen: (B,) the same under the reference, or None for reference-free objectives.
        ref_rejected: (B,) the same under the reference, or None.
        chosen_tokens: (B,) number of response tokens of y_w (float).
        rejected_tokens: (B,) number of response tokens of y_l (float).
        tokens: the per-token values behind the sums (the trainer's scoring path always gives them).
    """

    policy_chosen: Tensor
    policy_rejected: Tensor
    ref_chosen: Tensor | None
    ref_rejected: Tensor | None
    chosen_tokens: Tensor
    rejected_tokens: Tensor
    tokens: PairTokens | None = None

    @classmethod
    def from_rows(cls, sums: Tensor, counts: Tensor, ref: Tensor | None, tokens: PairTokens | None = None) -> PairLogps:
        """Split (2B,) per-row values of a collated batch, rows [chosen; rejected], into B pairs.

        Args:
            sums: (2B,) policy sequence log-probs.
            counts: (2B,) response token counts.
            ref: (2B,) reference sequence log-probs (cast to `sums`' dtype), or None.
        """
        b = sums.shape[0] // 2
        ref = None if ref is None else ref.to(sums.dtype)
        return cls(
            policy_chosen=sums[:b],
            policy_rejected=sums[b:],
            ref_chosen=None if ref is None else ref[:b],
            ref_rejected=None if ref is None else ref[b:],
            chosen_tokens=counts[:b],
            rejected_tokens=counts[b:],
            tokens=tokens,
        )

    def log_ratios(self, per_token: bool = False) -> tuple[Tensor, Tensor]:
        """Return (B,) log pi/pi_ref of chosen and rejected; divided by token counts when `per_token`."""
        if self.ref_chosen is None or self.ref_rejected is None:
            raise ValueError("this objective needs reference log-probs, but none were given")
        chosen = self.policy_chosen - self.ref_chosen
        rejected = self.policy_rejected - self.ref_rejected
        if per_token:
            chosen = chosen / self.chosen_tokens.clamp_min(1)
            rejected = rejected / self.rejected_tokens.clamp_min(1)
        return chosen, rejected


@dataclass
class ObjectiveOutput:
    """What an objective returns for B pairs.

    Attributes:
        loss: scalar, the mean of `losses`.
        losses: (B,) per-pair loss, differentiable.
        chosen_rewards: (B,) implicit reward of y_w, detached.
        rejected_rewards: (B,) implicit reward of y_l, detached.
        parts: scalar losses of a composed objective's parts, by name, detached (logged as train/loss/<name>).
    """

    loss: Tensor
    losses: Tensor
    chosen_rewards: Tensor
    rejected_rewards: Tensor
    parts: dict[str, Tensor] = field(default_factory=dict)


class Objective(nn.Module):
    """Base class: subclasses implement `forward(PairLogps) -> ObjectiveOutput`.

    Args:
        beta: the KL-constraint strength; a smaller beta is a wider KL budget. Must be > 0.
    """

    requires_reference: ClassVar[bool] = True
    # True for objectives that read `PairTokens.collision` (WPO): only then does the scoring path compute it,
    # since it costs one more log-sum-exp over the vocabulary per scored token.
    needs_collision: ClassVar[bool] = False
    # False: trains on preference pairs (`PairLogps`); True: on unpaired rows (`lit_daa.objectives.unpaired`)
    unpaired: ClassVar[bool] = False

    def __init__(self, beta: float = 0.1) -> None:
        super().__init__()
        if not beta > 0:
            raise InputError(f"objective option beta must be > 0, got {beta}")
        self.beta = float(beta)

    def implicit_rewards(self, logps: PairLogps) -> tuple[Tensor, Tensor]:
        """(B,) implicit rewards r = beta * log pi(y|x)/pi_ref(y|x) of chosen and rejected, detached."""
        chosen, rejected = logps.log_ratios()
        return (self.beta * chosen).detach(), (self.beta * rejected).detach()

    def _output(self, losses: Tensor, logps: PairLogps) -> ObjectiveOutput:
        chosen, rejected = self.implicit_rewards(logps)
        return ObjectiveOutput(losses.mean(), losses, chosen, rejected)

    def extra_repr(self) -> str:
        return f"beta={self.beta}"


def check_fraction(name: str, value: float) -> float:
    """Validate an option that must lie in [0, 1) and name it in the error."""
    if not 0.0 <= value < 1.0:
        raise InputError(f"objective option {name} must be in [0, 1), got {value}")
    return float(value)


__all__ = ["ObjectiveOutput", "Objective", "PairLogps", "PairTokens", "check_fraction"]
