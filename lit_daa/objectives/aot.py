"""AOT (Melnyk et al. 2024, "Distributional Preference Alignment of LLMs via Optimal Transport"), paired and unpaired.

AOT asks the distribution of the policy's chosen-over-rejected margins to dominate the reference's (first-order
stochastic dominance); with an L2 cost the optimal transport plan matches sorted values, so the loss compares the
batch's margins sorted, not pair by pair. Per-pair `losses` are therefore per rank of the sorted batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lit_daa.objectives.base import Objective, ObjectiveOutput, PairLogps, check_fraction


class _SortedLogistic(Objective):
    def __init__(self, beta: float = 0.1, label_smoothing: float = 0.0) -> None:
        super().__init__(beta)
        self.label_smoothing = check_fraction("label_smoothing", label_smoothing)

    def delta(self, logps: PairLogps) -> Tensor:
        raise NotImplementedError

    def forward(self, logps: PairLogps) -> ObjectiveOutput:
        u, eps = self.beta * self.delta(logps), self.label_smoothing
        losses = -(1.0 - eps) * F.logsigmoid(u) - eps * F.logsigmoid(-u)
        return self._output(losses, logps)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, label_smoothing={self.label_smoothing}"


class AOT(_SortedLogistic):
    """Paired AOT: delta = sort(log pi(y_w) - log pi(y_l)) - sort(log pi_ref(y_w) - log pi_ref(y_l)), then the
    (label-smoothed) logistic loss on beta * delta. With one pair per batch it is DPO.

    Args:
        beta: KL-constraint strength (> 0).
        label_smoothing: eps in [0, 1).
    """

    def delta(self, logps: PairLogps) -> Tensor:
        assert logps.ref_chosen is not None and logps.ref_rejected is not None
        policy = torch.sort(logps.policy_chosen - logps.policy_rejected).values
        reference = torch.sort(logps.ref_chosen - logps.ref_rejected).values
        return policy - reference


class AOTUnpaired(_SortedLogistic):
    """Unpaired AOT: delta = sort(log pi/pi_ref(y_w)) - sort(log pi/pi_ref(y_l)): the chosen log-ratios'
    distribution should dominate the rejected ones', whichever pair each came from.

    Args:
        beta: KL-constraint strength (> 0).
        label_smoothing: eps in [0, 1).
    """

    def delta(self, logps: PairLogps) -> Tensor:
        chosen, rejected = logps.log_ratios()
        return torch.sort(chosen).values - torch.sort(rejected).values
