"""R-DPO: DPO with a length regulariser (Park et al. 2024, "Disentangling Length from Quality in DPO")."""

from __future__ import annotations

import torch.nn.functional as F

from lit_daa.errors import InputError
from lit_daa.objectives.base import Objective, ObjectiveOutput, PairLogps


class RDPO(Objective):
    """Length-regularised DPO: loss = -log sigmoid(beta * h + alpha * (|y_w| - |y_l|)).

    Sign convention, as in Park et al. (Eq. 9): the length term enters with a plus. When the chosen answer is
    the longer one the sigmoid is already closer to 1, so the pair pushes less, and the policy gains less
    implicit reward from length alone. (Writing it with a minus would *reward* longer winners further.)
    |y| is the number of response tokens. alpha = 0 is DPO.

    Args:
        beta: KL-constraint strength (> 0).
        alpha: length-regularisation strength (>= 0).
    """

    def __init__(self, beta: float = 0.1, alpha: float = 0.01) -> None:
        super().__init__(beta)
        if alpha < 0:
            raise InputError(f"RDPO option alpha must be >= 0, got {alpha}")
        self.alpha = float(alpha)

    def forward(self, logps: PairLogps) -> ObjectiveOutput:
        chosen, rejected = logps.log_ratios()
        length_gap = logps.chosen_tokens - logps.rejected_tokens
        losses = -F.logsigmoid(self.beta * (chosen - rejected) + self.alpha * length_gap)
        return self._output(losses, logps)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, alpha={self.alpha}"
