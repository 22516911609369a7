"""EXO (Ji et al. 2024, "Towards Efficient Exact Optimization of Language Model Alignment"), pairwise form."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lit_daa.errors import InputError
from lit_daa.objectives.base import Objective, ObjectiveOutput, PairLogps


class EXO(Objective):
    """loss = KL(q || p): q = (sigmoid(u), sigmoid(-u)), u = beta * h, against the labels p = (1 - eps, eps).

    = sigmoid(u)(log sigmoid(u) - log(1 - eps)) + sigmoid(-u)(log sigmoid(-u) - log eps). It is 0, its minimum,
    where sigmoid(u) = 1 - eps, i.e. u = log((1 - eps) / eps): unlike DPO it stops pushing once the policy's
    preference matches the labels' confidence.

    Args:
        beta: KL-constraint strength (> 0).
        epsilon: label smoothing eps in (0, 0.5) (the paper's and TRL's default 1e-3).
    """

    def __init__(self, beta: float = 0.1, epsilon: float = 1e-3) -> None:
        super().__init__(beta)
        if not 0.0 < epsilon < 0.5:
            raise InputError(f"EXO option epsilon must be in (0, 0.5), got {epsilon}")
        self.epsilon = float(epsilon)

    def forward(self, logps: PairLogps) -> ObjectiveOutput:
        chosen, rejected = logps.log_ratios()
        u = self.beta * (chosen - rejected)
        losses = torch.sigmoid(u) * (F.logsigmoid(u) - math.log1p(-self.epsilon)) + torch.sigmoid(-u) * (
            F.logsigmoid(-u) - math.log(self.epsilon)
        )
        return self._output(losses, logps)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, epsilon={self.epsilon}"
