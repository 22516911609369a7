"""WPO (Zhou et al. 2024, "WPO: Enhancing RLHF with Weighted Preference Optimization"): weights any paired loss."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from lit_daa.errors import InputError
from lit_daa.objectives.base import Objective, ObjectiveOutput, PairLogps


class WPO(Objective):
    """Each pair's loss times w(y_w) * w(y_l), w(y) = exp(mean_t [log p(y_t) - log sum_v p(v)^2]) (detached).

    The weight says how likely the policy itself is to produce the response (normalised per token by the
    distribution's collision probability), so off-policy pairs count less: the WPO paper's Eq. 2, as in TRL's
    `use_weighting`. The wrapped objective's rewards are kept.

    Args:
        objective: the paired loss to weight (e.g. DPO).
    """

    needs_collision: ClassVar[bool] = True

    def __init__(self, objective: Objective) -> None:
        super().__init__(objective.beta)
        self.objective = objective
        self.requires_reference = objective.requires_reference

    def weights(self, logps: PairLogps) -> Tensor:
        """(B,) the pairs' weights."""
        tokens = logps.tokens
        if tokens is None or tokens.collision is None:
            raise InputError("WPO needs the per-token log-probs of the trainer's scoring path")
        b = logps.chosen_tokens.shape[0]
        aligned = (tokens.policy.detach() - tokens.collision).to(logps.chosen_tokens.dtype)
        means = tokens.sums(aligned, 2 * b) / torch.cat([logps.chosen_tokens, logps.rejected_tokens]).clamp_min(1)
        w = torch.exp(means)
        return w[:b] * w[b:]

    def implicit_rewards(self, logps: PairLogps) -> tuple[Tensor, Tensor]:
        return self.objective.implicit_rewards(logps)

    def forward(self, logps: PairLogps) -> ObjectiveOutput:
        out = self.objective(logps)
        losses = out.losses * self.weights(logps)
        return ObjectiveOutput(losses.mean(), losses, out.chosen_rewards, out.rejected_rewards, out.parts)

    def extra_repr(self) -> str:
        return ""
