"""DPO-Positive (Pal et al. 2024, "Smaug: Fixing Failure Modes of Preference Optimisation with DPO-Positive")."""

from __future__ import annotations

import torch.nn.functional as F

from lit_daa.errors import InputError
from lit_daa.objectives.base import Objective, ObjectiveOutput, PairLogps


class DPOP(Objective):
    """loss = -log sigmoid(beta * (c - r - lambda * max(0, log pi_ref(y_w|x) - log pi(y_w|x)))).

    c and r are the log-ratios log pi/pi_ref of y_w and y_l (sequence sums). DPO can lower the likelihood of the
    preferred response as long as the rejected one falls faster; DPOP adds a penalty, inside the sigmoid, as soon as
    the chosen likelihood falls below the reference's (-c > 0). With c >= 0 it is DPO; at c = r = 0 the loss is log 2.

    Args:
        beta: KL-constraint strength (> 0).
        penalty: lambda >= 0, the weight of the penalty (the paper uses 50; 0 is DPO).
    """

    def __init__(self, beta: float = 0.1, penalty: float = 50.0) -> None:
        super().__init__(beta)
        if not penalty >= 0:
            raise InputError(f"objective option penalty must be >= 0, got {penalty}")
        self.penalty = float(penalty)

    def forward(self, logps: PairLogps) -> ObjectiveOutput:
        chosen, rejected = logps.log_ratios()
        below_reference = (-chosen).clamp_min(0.0)
        u = self.beta * (chosen - rejected - self.penalty * below_reference)
        return self._output(-F.logsigmoid(u), logps)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, penalty={self.penalty}"
