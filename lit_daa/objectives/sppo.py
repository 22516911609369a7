"""SPPO with hard probabilities (Wu et al. 2024, "Self-Play Preference Optimization for Language Model Alignment")."""

from __future__ import annotations

from lit_daa.objectives.base import Objective, ObjectiveOutput, PairLogps


class SPPOHard(Objective):
    """loss = (log pi/pi_ref(y_w) - 1/(2 beta))^2 + (log pi/pi_ref(y_l) + 1/(2 beta))^2.

    SPPO's squared loss with the win probability set to 1 for the chosen and 0 for the rejected response: each
    log-ratio is pulled to its own target, +-1/(2 beta), where the loss is 0.

    Args:
        beta: KL-constraint strength (> 0); the targets are +-1/(2 beta).
    """

    def forward(self, logps: PairLogps) -> ObjectiveOutput:
        chosen, rejected = logps.log_ratios()
        target = 0.5 / self.beta
        losses = (chosen - target) ** 2 + (rejected + target) ** 2
        return self._output(losses, logps)
