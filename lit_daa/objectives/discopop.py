"""DiscoPOP (Chris Lu et al. 2024, "Discovering Preference Optimization Algorithms with and for LLMs")."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lit_daa.errors import InputError
from lit_daa.objectives.base import Objective, ObjectiveOutput, PairLogps


class DiscoPOP(Objective):
    """Log-ratio modulated loss: with u = beta * h and m = sigmoid(u / tau),
    loss = (1 - m) * (-log sigmoid(u)) + m * exp(-u).

    The logistic (DPO) loss for negative margins, the exponential loss for positive ones, blended smoothly. At
    h = 0 the loss is (log 2 + 1) / 2.

    Args:
        beta: KL-constraint strength (> 0).
        tau: the temperature of the blend (the paper's 0.05).
    """

    def __init__(self, beta: float = 0.1, tau: float = 0.05) -> None:
        super().__init__(beta)
        if not tau > 0:
            raise InputError(f"DiscoPOP option tau must be > 0, got {tau}")
        self.tau = float(tau)

    def forward(self, logps: PairLogps) -> ObjectiveOutput:
        chosen, rejected = logps.log_ratios()
        u = self.beta * (chosen - rejected)
        m = torch.sigmoid(u / self.tau)
        losses = (1.0 - m) * -F.logsigmoid(u) + m * torch.exp(-u)
        return self._output(losses, logps)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, tau={self.tau}"
