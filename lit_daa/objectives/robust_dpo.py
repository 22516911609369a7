"""Robust DPO (Chowdhury et al. 2024, "Provably Robust DPO"): DPO unbiased for labels flipped at a known rate."""

from __future__ import annotations

import torch.nn.functional as F

from lit_daa.errors import InputError
from lit_daa.objectives.base import Objective, ObjectiveOutput, PairLogps


class RobustDPO(Objective):
    """loss = [(1 - eps)(-log sigmoid(u)) - eps(-log sigmoid(-u))] / (1 - 2 eps), u = beta * h.

    An unbiased estimate of the clean-label DPO loss when each label is flipped with probability eps. At h = 0 the
    loss is log 2 for every eps.

    Args:
        beta: KL-constraint strength (> 0).
        label_smoothing: the flip rate eps, in [0, 0.5).
    """

    def __init__(self, beta: float = 0.1, label_smoothing: float = 0.1) -> None:
        super().__init__(beta)
        if not 0.0 <= label_smoothing < 0.5:
            raise InputError(f"RobustDPO option label_smoothing must be in [0, 0.5), got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)

    def forward(self, logps: PairLogps) -> ObjectiveOutput:
        chosen, rejected = logps.log_ratios()
        u, eps = self.beta * (chosen - rejected), self.label_smoothing
        losses = (-(1.0 - eps) * F.logsigmoid(u) + eps * F.logsigmoid(-u)) / (1.0 - 2.0 * eps)
        return self._output(losses, logps)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, label_smoothing={self.label_smoothing}"
