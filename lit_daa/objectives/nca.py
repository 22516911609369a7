"""NCA (Chen et al. 2024, "Noise Contrastive Alignment of Language Models with Explicit Rewards"), pairwise."""

from __future__ import annotations

import torch.nn.functional as F

from lit_daa.objectives.base import Objective, ObjectiveOutput, PairLogps


class NCA(Objective):
    """loss = -log sigmoid(r_w) - 1/2 log sigmoid(-r_w) - 1/2 log sigmoid(-r_l), r = beta * log pi/pi_ref.

    Each response's own reward is anchored (not only their difference), so the chosen likelihood is not driven
    down with the rejected one. At r_w = r_l = 0 the loss is 2 log 2.

    Args:
        beta: KL-constraint strength (> 0).
    """

    def forward(self, logps: PairLogps) -> ObjectiveOutput:
        chosen, rejected = logps.log_ratios()
        rw, rl = self.beta * chosen, self.beta * rejected
        losses = -F.logsigmoid(rw) - 0.5 * F.logsigmoid(-rw) - 0.5 * F.logsigmoid(-rl)
        return self._output(losses, logps)
