"""f-DPO (Wang et al. 2023, "Beyond Reverse KL: Generalizing DPO with Diverse Divergence Constraints").

DPO's reward is the log-ratio because its constraint is the reverse KL; under an f-divergence the implicit reward
becomes f'(pi/pi_ref). Each divergence is a small class giving that score from the log-ratio.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from lit_daa.errors import InputError
from lit_daa.objectives.base import Objective, ObjectiveOutput, PairLogps


class Divergence:
    """f'(t) at t = pi/pi_ref, from the log-ratio log t."""

    def score(self, log_ratio: Tensor) -> Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return type(self).__name__


class ReverseKL(Divergence):
    """f(t) = t log t: f'(t) = log t + 1, the constant cancels in the margin: plain DPO."""

    def score(self, log_ratio: Tensor) -> Tensor:
        return log_ratio


class ForwardKL(Divergence):
    """f(t) = -log t: f'(t) = -1/t, shifted to 1 - 1/t (the shift cancels in the margin)."""

    def score(self, log_ratio: Tensor) -> Tensor:
        return 1.0 - torch.exp(-log_ratio)


class JensenShannon(Divergence):
    """f(t) = t log t - (1 + t) log((1 + t)/2): f'(t) = log(2t / (1 + t)) = log 2 + log sigmoid(log t)."""

    def score(self, log_ratio: Tensor) -> Tensor:
        return math.log(2.0) + F.logsigmoid(log_ratio)


class Alpha(Divergence):
    """alpha-divergence: f'(t) = (t^(alpha - 1) - 1) / (alpha - 1); alpha -> 1 is the reverse KL.

    Args:
        alpha: the coefficient (the exponent is clamped so that exp stays finite in float32).
    """

    def __init__(self, alpha: float = 0.5) -> None:
        self.alpha = float(alpha)

    def score(self, log_ratio: Tensor) -> Tensor:
        if abs(self.alpha - 1.0) < 1e-6:
            return log_ratio
        exponent = ((self.alpha - 1.0) * log_ratio).clamp(max=80.0)
        return torch.expm1(exponent) / (self.alpha - 1.0)

    def __repr__(self) -> str:
        return f"Alpha({self.alpha})"


class FDPO(Objective):
    """loss = -log sigmoid(beta * (f'(t_w) - f'(t_l))), t = pi(y|x)/pi_ref(y|x); rewards beta * f'(t).

    With `ReverseKL` it is DPO. At t_w = t_l the loss is log 2 for every divergence.

    Args:
        beta: constraint strength (> 0).
        divergence: ReverseKL, ForwardKL, JensenShannon or Alpha(alpha).
    """

    def __init__(self, beta: float = 0.1, divergence: Divergence | None = None) -> None:
        super().__init__(beta)
        self.divergence = divergence if divergence is not None else ReverseKL()
        if not isinstance(self.divergence, Divergence):
            raise InputError(f"FDPO option divergence must be a Divergence, got {type(divergence).__name__}")

    def implicit_rewards(self, logps: PairLogps) -> tuple[Tensor, Tensor]:
        chosen, rejected = logps.log_ratios()
        score = self.divergence.score
        return (self.beta * score(chosen)).detach(), (self.beta * score(rejected)).detach()

    def forward(self, logps: PairLogps) -> ObjectiveOutput:
        chosen, rejected = logps.log_ratios()
        margin = self.divergence.score(chosen) - self.divergence.score(rejected)
        return self._output(-F.logsigmoid(self.beta * margin), logps)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, divergence={self.divergence!r}"
