"""Length-normalised DPO with a reference (TRL's `sigmoid_norm`)."""

from __future__ import annotations

import torch.nn.functional as F

from lit_daa.objectives.base import Objective, ObjectiveOutput, PairLogps


class NormalizedDPO(Objective):
    """loss = -log sigmoid(beta * (c / |y_w| - r / |y_l|)), c and r the sequence log-ratios of y_w and y_l.

    DPO on per-token log-ratios, so a longer response does not get a larger margin for its length alone (one of
    the length exploits the over-optimization lab measures). At c = r = 0 the loss is log 2.

    Args:
        beta: KL-constraint strength (> 0), per token.
    """

    def forward(self, logps: PairLogps) -> ObjectiveOutput:
        chosen, rejected = logps.log_ratios(per_token=True)
        losses = -F.logsigmoid(self.beta * (chosen - rejected))
        return self._output(losses, logps)
