"""APO (D'Oosterlinck et al. 2024, "Anchored Preference Optimization and Contrastive Revisions"): zero and down."""

from __future__ import annotations

import torch

from lit_daa.objectives.base import Objective, ObjectiveOutput, PairLogps


class APOZero(Objective):
    """loss = 1 - sigmoid(beta c) + sigmoid(beta r), c and r the log-ratios of y_w and y_l (the paper's Eq. 7).

    For chosen responses better than the policy's own: push the chosen likelihood up and the rejected down, each
    anchored to the reference. At c = r = 0 the loss is 1.

    Args:
        beta: KL-constraint strength (> 0).
    """

    def forward(self, logps: PairLogps) -> ObjectiveOutput:
        chosen, rejected = logps.log_ratios()
        losses = 1.0 - torch.sigmoid(self.beta * chosen) + torch.sigmoid(self.beta * rejected)
        return self._output(losses, logps)


class APODown(Objective):
    """loss = sigmoid(beta c) + 1 - sigmoid(beta (c - r)) (the paper's Eq. 8).

    For chosen responses worse than the policy's own: push both likelihoods down, the rejected one more. At
    c = r = 0 the loss is 1.

    Args:
        beta: KL-constraint strength (> 0).
    """

    def forward(self, logps: PairLogps) -> ObjectiveOutput:
        chosen, rejected = logps.log_ratios()
        losses = torch.sigmoid(self.beta * chosen) + 1.0 - torch.sigmoid(self.beta * (chosen - rejected))
        return self._output(losses, logps)
