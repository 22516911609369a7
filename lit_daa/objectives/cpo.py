"""CPO (Xu et al. 2024, "Contrastive Preference Optimization"): reference-free DPO plus SFT on the chosen."""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor

from lit_daa.objectives.base import Objective, ObjectiveOutput, PairLogps


class CPO(Objective):
    """loss = -log sigmoid(beta * (log pi(y_w) - log pi(y_l))) - alpha * mean log pi(y_w), no reference.

    DPO with a uniform reference (which drops out) and a behaviour-cloning term on the chosen response
    (token-averaged). The implicit reward is beta * log pi(y | x). At equal log-probs the first term is log 2.

    Args:
        beta: scale of the preference term (> 0).
        alpha: weight of the chosen response's negative log-likelihood (>= 0).
    """

    requires_reference: ClassVar[bool] = False

    def __init__(self, beta: float = 0.1, alpha: float = 1.0) -> None:
        super().__init__(beta)
        self.alpha = float(alpha)

    def implicit_rewards(self, logps: PairLogps) -> tuple[Tensor, Tensor]:
        return (self.beta * logps.policy_chosen).detach(), (self.beta * logps.policy_rejected).detach()

    def forward(self, logps: PairLogps) -> ObjectiveOutput:
        preference = -F.logsigmoid(self.beta * (logps.policy_chosen - logps.policy_rejected))
        nll = -logps.policy_chosen / logps.chosen_tokens.clamp_min(1)
        return self._output(preference + self.alpha * nll, logps)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, alpha={self.alpha}"
