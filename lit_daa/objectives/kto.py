"""KTO (Ethayarajh et al. 2024, "KTO: Model Alignment as Prospect Theoretic Optimization")."""

from __future__ import annotations

import torch

from lit_daa.objectives.unpaired import RowLogps, RowOutput, WeightedRows


class KTO(WeightedRows):
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

    def forward(self, rows: RowLogps) -> RowOutput:
        r = rows.log_ratios()
        z0 = rows.kl_estimate()
        desirable = 1.0 - torch.sigmoid(self.beta * (r - z0))
        undesirable = 1.0 - torch.sigmoid(self.beta * (z0 - r))
        return self._row_output(self.weighted(rows, desirable, undesirable), rows, z0)
