"""SimPO (Meng et al. 2024): reference-free, length-normalised, with a target margin."""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor

from lit_daa.errors import InputError
from lit_daa.objectives.base import Objective, ObjectiveOutput, PairLogps


class SimPO(Objective):
    """loss = -log sigmoid(beta * (mean log pi(y_w) - mean log pi(y_l)) - gamma).

    The means are over response tokens. No reference model is loaded. The implicit reward is
    beta * mean log pi(y | x).

    Args:
        beta: reward scale (> 0), 2.0 as in the SimPO paper.
        gamma: target reward margin (>= 0).
    """

    requires_reference: ClassVar[bool] = False

    def __init__(self, beta: float = 2.0, gamma: float = 1.0) -> None:
        super().__init__(beta)
        if gamma < 0:
            raise InputError(f"SimPO option gamma must be >= 0, got {gamma}")
        self.gamma = float(gamma)

    def implicit_rewards(self, logps: PairLogps) -> tuple[Tensor, Tensor]:
        chosen = self.beta * logps.policy_chosen / logps.chosen_tokens.clamp_min(1)
        rejected = self.beta * logps.policy_rejected / logps.rejected_tokens.clamp_min(1)
        return chosen.detach(), rejected.detach()

    def forward(self, logps: PairLogps) -> ObjectiveOutput:
        chosen = logps.policy_chosen / logps.chosen_tokens.clamp_min(1)
        rejected = logps.policy_rejected / logps.rejected_tokens.clamp_min(1)
        losses = -F.logsigmoid(self.beta * (chosen - rejected) - self.gamma)
        return self._output(losses, logps)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, gamma={self.gamma}"
