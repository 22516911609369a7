"""APO-zero on unpaired rows (D'Oosterlinck et al. 2024, "Anchored Preference Optimization and Contrastive
Revisions", Eq. 7 split per response, as TRL's `KTOTrainer` loss_type "apo_zero_unpaired")."""

from __future__ import annotations

import torch

from lit_daa.objectives.unpaired import RowLogps, RowOutput, WeightedRows


class APOZeroUnpaired(WeightedRows):
    """desirable y: loss = lambda_D * (1 - sigmoid(beta r)); undesirable y: loss = lambda_U * sigmoid(beta r).

    r = log pi(y|x)/pi_ref(y|x). Each response is anchored to the reference on its own: desirable likelihoods go up,
    undesirable ones down, with no KL reference point. At r = 0 each row's loss is half its weight.

    Args:
        beta: KL-constraint strength (> 0).
        desirable_weight: lambda_D (> 0).
        undesirable_weight: lambda_U (> 0).
    """

    def forward(self, rows: RowLogps) -> RowOutput:
        u = self.beta * rows.log_ratios()
        return self._row_output(self.weighted(rows, 1.0 - torch.sigmoid(u), torch.sigmoid(u)), rows)
