"""DPO (Rafailov et al. 2023), with label smoothing for conservative DPO."""

from __future__ import annotations

import torch.nn.functional as F

from lit_daa.objectives.base import Objective, ObjectiveOutput, PairLogps, check_fraction


class DPO(Objective):
    """Direct Preference Optimization: g(u) = -log sigmoid(u) with u = beta * h.

    h = log pi(y_w)/pi_ref(y_w) - log pi(y_l)/pi_ref(y_l) (sequence sums). With label smoothing eps
    (conservative DPO, labels flipped with probability eps) the per-pair loss is
    -(1 - eps) log sigmoid(u) - eps log sigmoid(-u). At h = 0 the loss is log 2 for every eps.

    Args:
        beta: KL-constraint strength (> 0).
        label_smoothing: eps in [0, 1); 0 is plain DPO.
    """

    def __init__(self, beta: float = 0.1, label_smoothing: float = 0.0) -> None:
        super().__init__(beta)
        self.label_smoothing = check_fraction("label_smoothing", label_smoothing)

    def forward(self, logps: PairLogps) -> ObjectiveOutput:
        chosen, rejected = logps.log_ratios()
        u = self.beta * (chosen - rejected)
        eps = self.label_smoothing
        losses = -(1.0 - eps) * F.logsigmoid(u) - eps * F.logsigmoid(-u)
        return self._output(losses, logps)
