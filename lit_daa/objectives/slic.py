"""SLiC as the reference-anchored hinge of the paper's unified loss."""

from __future__ import annotations

import torch

from lit_daa.objectives.base import Objective, ObjectiveOutput, PairLogps


class SLiC(Objective):
    """Hinge on the log-ratio margin: g(u) = max(0, margin - u) with u = beta * h (margin 1 in the paper).

    This is the form of Rafailov et al. 2024 (Eq. 2). The original SLiC-HF (a margin on raw log-likelihoods,
    no reference, plus an SFT term) is a different objective.

    Args:
        beta: KL-constraint strength (> 0).
        margin: the hinge margin (default 1.0).
    """

    def __init__(self, beta: float = 0.1, margin: float = 1.0) -> None:
        super().__init__(beta)
        self.margin = float(margin)

    def forward(self, logps: PairLogps) -> ObjectiveOutput:
        chosen, rejected = logps.log_ratios()
        losses = torch.relu(self.margin - self.beta * (chosen - rejected))
        return self._output(losses, logps)
