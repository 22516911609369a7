"""Held-out preference metrics of a checkpoint: the run's own validation pairs and objective, no Trainer needed.

The run's resolved config (`<run>/fit.yaml`, see `sweep.fit_config`) is read exactly as `lit-daa fit --config
<run>/fit.yaml` reads it (same parser, links and defaults), and only the data module and the objective are built
from it, so the validation pairs and the loss are those the run was trained with. The policy and reference come from
the caller (already loaded for sampling).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from jsonargparse import ArgumentParser, Namespace
from torch import nn

from lit_daa.data.datamodule import PreferenceDataModule
from lit_daa.metrics import preference_metrics
from lit_daa.objectives import Objective
from lit_daa.reference import FrozenCopy
from lit_daa.scoring import score_pairs
from lit_daa.sweep.fit_config import parse_fit_config, read_fit_config

__all__ = ["HeldOutPairs", "parse_fit_config"]


class HeldOutPairs:
    """The validation pairs and the objective of a run, to score checkpoints with.

    Args:
        fit_config: the run's fit.yaml.
    """

    def __init__(self, fit_config: Path) -> None:
        config = read_fit_config(fit_config)
        parser = ArgumentParser()
        parser.add_class_arguments(PreferenceDataModule, "data")
        parser.add_argument("--objective", type=Objective)
        parts = parser.instantiate(parser.parse_object(Namespace(data=config.data, objective=config.model.objective)))
        self.datamodule: PreferenceDataModule = parts.data
        self.objective: Objective = parts.objective
        self.datamodule.prepare_data()
        self.datamodule.setup("validate")

    @torch.no_grad()
    def metrics(self, policy: nn.Module, reference: nn.Module) -> dict[str, float]:
        """val_accuracy, val_loss, val_margin (the run's objective) and chosen_logratio (mean log pi/pi_ref of chosen
        responses). For unpaired rows: no accuracy (NaN), the margin of desirable over undesirable rewards, and the
        log-ratio of the desirable rows.

        The reference is always scored, also for reference-free objectives, because chosen_logratio needs it.
        Without validation pairs all three are NaN.
        """
        loader = self.datamodule.val_dataloader()
        if not loader:
            return {"val_accuracy": math.nan, "val_loss": math.nan, "val_margin": math.nan, "chosen_logratio": math.nan}
        device = next(policy.parameters()).device
        objective = self.objective.to(device).eval()
        metrics = preference_metrics("val/").to(device)
        logratio_sum, pairs = 0.0, 0
        was_training = policy.training, reference.training
        policy.eval()
        frozen = FrozenCopy(reference)  # the rule's frozen-copy case: scored for every objective
        try:
            for batch in loader:
                batch = {k: v.to(device) for k, v in batch.items()}
                scored = score_pairs(policy, frozen, objective, batch)
                metrics.update(**scored.metric_values())
                logratios = scored.preferred_logratios()
                logratio_sum += float(logratios.double().sum())
                pairs += logratios.shape[0]
        finally:
            policy.train(was_training[0]), frozen.model.train(was_training[1])
        values = {k: float(v) for k, v in metrics.compute().items()}
        # unpaired rows (KTO, ...) have no pairwise accuracy; their margin is desirable minus undesirable reward
        margin = values.get("val/rewards/margins")
        if margin is None:
            margin = values["val/rewards/desirable"] - values["val/rewards/undesirable"]
        return {
            "val_accuracy": values.get("val/rewards/accuracies", math.nan),
            "val_loss": values["val/loss"],
            "val_margin": margin,
            "chosen_logratio": logratio_sum / pairs if pairs else math.nan,
        }
