"""KTO (Ethayarajh et al. 2024, "KTO: Model Alignment as Prospect Theoretic Optimization")."""

from __future__ import annotations

import torch

from lit_daa.objectives.unpaired import RowLogps, RowOutput, UnpairedObjective, check_weight


class KTO(UnpairedObjective):
    """Kahneman-Tversky Optimization on unpaired rows, r = log pi(y|x)/pi_ref(y|x) (the paper's Eq. 7):

        desirable y:   loss = lambda_D * (1 - sigmoid(beta * (r - z0)))
        undesirable y: loss = lambda_U * (1 - sigmoid(beta * (z0 - r)))

    The reference point z0 = max(0, mean(log pi(y'|x) - log pi_ref(y'|x))) is the batch's KL estimate from
    mismatched pairs (each row's prompt with another row's completion, as the paper and TRL build them), detached.
    The loss is the mean over all rows (TRL's `KTOTrainer`, loss_type "kto"). At r = z0 each row's loss is half its
    weight. With unequal counts the paper advises lambda_D n_D / (lambda_U n_U) in [1, 4/3].

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
        r = rows.log_ratios()
        z0 = rows.kl_estimate()
        desirable = self.desirable_weight * (1.0 - torch.sigmoid(self.beta * (r - z0)))
        undesirable = self.undesirable_weight * (1.0 - torch.sigmoid(self.beta * (z0 - r)))
        return self._row_output(torch.where(rows.label, desirable, undesirable), rows, z0)

    def extra_repr(self) -> str:
        return (
            f"beta={self.beta}, desirable_weight={self.desirable_weight}, undesirable_weight={self.undesirable_weight}"
        )
