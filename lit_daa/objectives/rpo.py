"""RPO (Pang et al. 2024, "Iterative Reasoning Preference Optimization"): DPO plus alpha times SFT on y_w."""

from __future__ import annotations

from lit_daa.objectives.dpo import DPO
from lit_daa.objectives.sft import SFT
from lit_daa.objectives.weighted import Weighted


class RPO(Weighted):
    """loss = -log sigmoid(beta h) + alpha * (-log pi(y_w) per token): `Weighted([DPO(beta), SFT()], [1, alpha])`
    with its own `beta`, so that sweeps can vary it like any objective's. Logs `train/loss/dpo` and `.../sft`.

    Args:
        beta: DPO's KL-constraint strength (> 0).
        alpha: weight of the chosen responses' negative log-likelihood.
    """

    def __init__(self, beta: float = 0.1, alpha: float = 1.0) -> None:
        super().__init__([DPO(beta), SFT()], [1.0, alpha])
        self.alpha = float(alpha)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, alpha={self.alpha}"
