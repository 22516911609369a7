"""BCO on pairs (Jung et al. 2024, "Binary Classifier Optimization for Large Language Model Alignment")."""

from __future__ import annotations

import torch.nn.functional as F

from lit_daa.objectives.base import Objective, ObjectiveOutput, PairLogps


class BCOPair(Objective):
    """loss = -log sigmoid(r_w - delta) - log sigmoid(-(r_l - delta)), r = beta * log pi/pi_ref.

    Each response is classified on its own (chosen: good, rejected: bad). The paper shifts the rewards by a
    running mean delta; here delta is a fixed option (0, as TRL's `bco_pair`), so that every data-parallel rank
    and a resumed run use the same value. At r = delta the loss is 2 log 2.

    Args:
        beta: KL-constraint strength (> 0).
        delta: the reward shift.
    """

    def __init__(self, beta: float = 0.1, delta: float = 0.0) -> None:
        super().__init__(beta)
        self.delta = float(delta)

    def forward(self, logps: PairLogps) -> ObjectiveOutput:
        chosen, rejected = logps.log_ratios()
        rw, rl = self.beta * chosen - self.delta, self.beta * rejected - self.delta
        losses = -F.logsigmoid(rw) - F.logsigmoid(-rl)
        return self._output(losses, logps)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, delta={self.delta}"
