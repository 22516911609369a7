"""APO-zero on unpaired rows (D'Oosterlinck et al. 2024, "Anchored Preference Optimization and Contrastive
Revisions", Eq. 7 split per response, as TRL's `KTOTrainer` loss_type "apo_zero_unpaired")."""

from __future__ import annotations

import torch

from lit_daa.objectives.unpaired import RowLogps, RowOutput, UnpairedObjective, check_weight


class APOZeroUnpaired(UnpairedObjective):
    """desirable y: loss = lambda_D * (1 - sigmoid(beta r)); undesirable y: loss = lambda_U * sigmoid(beta r).

    r = log pi(y|x)/pi_ref(y|x). Each response is anchored to the reference on its own: desirable likelihoods go up,
    undesirable ones down, with no KL reference point. At r = 0 each row's loss is half its weight.

    Args:
        beta: KL-constraint strength (> 0).
        desirable_weight: lambda_D (> 0).
        undesirable_weight: lambda_U (> 0).
    """

    def __init__(self, beta: float = 0.1, desirable_weight: float = 1.0, undesirable_weight: float = 1.0) -> None:
        super().__init__(beta)
        self.desirable_weight = check_weight("desirable_weight", desirable_weight)
        self.undesirable_weight = check_weight("undesirable_weight", undesirable_weight)

    def forward(self, rows: RowLogps) -> RowOutput:
        u = self.beta * rows.log_ratios()
        desirable = self.desirable_weight * (1.0 - torch.sigmoid(u))
        undesirable = self.undesirable_weight * torch.sigmoid(u)
        return self._row_output(torch.where(rows.label, desirable, undesirable), rows)

    def extra_repr(self) -> str:
        return (
            f"beta={self.beta}, desirable_weight={self.desirable_weight}, undesirable_weight={self.undesirable_weight}"
        )
