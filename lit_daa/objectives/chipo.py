"""Chi-squared Preference Optimization (Huang et al. 2024, "Correcting the Mythos of KL-Regularization: Direct
Alignment without Overoptimization via Chi-Squared Preference Optimization")."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lit_daa.errors import InputError
from lit_daa.objectives.base import Objective, ObjectiveOutput, PairLogps

# exp() of a sequence log-ratio above this overflows float32's range soon after; the capped value is already ~5e21,
# so the clipped (or any sensible) sigmoid argument is saturated there and nothing of the loss changes.
RATIO_CAP = 50.0


def chi_link(log_ratio: Tensor) -> Tensor:
    """phi(z) = z + log z of the ratio z = pi/pi_ref, from h = log z: exp(h) + h (h capped at `RATIO_CAP`)."""
    return torch.exp(log_ratio.clamp(max=RATIO_CAP)) + log_ratio


class ChiPO(Objective):
    """loss = -log sigmoid(clip_{2 R}(beta phi(z_w) - beta phi(z_l))), phi(z) = z + log z, z = pi(y|x)/pi_ref(y|x).

    DPO with the link phi in place of log: the chi-squared divergence plus the KL (the z term) regularises, which
    penalises responses the reference makes unlikely far more than the KL does (the paper's Algorithm 1). The paper
    clips the sigmoid's argument to [-2 R_max, 2 R_max], R_max a bound on the rewards; `r_max` None leaves it
    unclipped. At z_w = z_l the loss is log 2. The implicit rewards are beta * phi(z).

    Args:
        beta: KL-constraint strength (> 0).
        r_max: the reward bound R_max (> 0) of the clipping, or None for none.
    """

    def __init__(self, beta: float = 0.1, r_max: float | None = None) -> None:
        super().__init__(beta)
        if r_max is not None and not r_max > 0:
            raise InputError(f"objective option r_max must be > 0 (or null for no clipping), got {r_max}")
        self.r_max = None if r_max is None else float(r_max)

    def implicit_rewards(self, logps: PairLogps) -> tuple[Tensor, Tensor]:
        chosen, rejected = logps.log_ratios()
        return (self.beta * chi_link(chosen)).detach(), (self.beta * chi_link(rejected)).detach()

    def forward(self, logps: PairLogps) -> ObjectiveOutput:
        chosen, rejected = logps.log_ratios()
        u = self.beta * (chi_link(chosen) - chi_link(rejected))
        if self.r_max is not None:
            u = u.clamp(-2.0 * self.r_max, 2.0 * self.r_max)
        return self._output(-F.logsigmoid(u), logps)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, r_max={self.r_max}"
