"""Held-out preference metrics of a checkpoint: the run's own validation pairs and objective, no Trainer needed.

The fit arguments of a run are parsed exactly as `lit-daa fit` parses them (same parser, links and defaults), and
only the data module and the objective are built from them, so the validation pairs and the loss are those the
run was trained with. The policy and reference come from the caller (already loaded for sampling).
"""

from __future__ import annotations

import math

import torch
from jsonargparse import ArgumentParser, Namespace
from torch import nn

from lit_daa.cli import DAACLI, trainer_defaults
from lit_daa.data.datamodule import PreferenceDataModule
from lit_daa.metrics import preference_metrics
from lit_daa.module import DAAModule
from lit_daa.objectives import Objective
from lit_daa.reference import FrozenCopy
from lit_daa.scoring import score_pairs


class _ParseOnlyCLI(DAACLI):
    """DAACLI that stops after parsing: no model, data module or Trainer is built, the global seed is left alone."""

    def _set_seed(self) -> None:
        pass

    def instantiate_classes(self) -> None:
        pass


def parse_fit_config(fit_args: list[str]) -> Namespace:
    """The resolved config of `lit-daa fit <fit_args>` (without the `fit` word), as the fit itself would see it."""
    cli = _ParseOnlyCLI(
        DAAModule,
        PreferenceDataModule,
        args=fit_args,
        run=False,
        trainer_defaults=trainer_defaults(),
        auto_configure_optimizers=False,
        parser_kwargs={"prog": "lit-daa fit"},
    )
    return cli.config


class HeldOutPairs:
    """The validation pairs and the objective of a run, to score checkpoints with.

    Args:
        fit_args: the run's `lit-daa fit` arguments (without `fit`).
    """

    def __init__(self, fit_args: list[str]) -> None:
        config = parse_fit_config(fit_args)
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
        responses).

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
                logps = scored.logps
                logratio_sum += float((logps.policy_chosen - logps.ref_chosen).double().sum())
                pairs += logps.policy_chosen.shape[0]
        finally:
            policy.train(was_training[0]), frozen.model.train(was_training[1])
        values = {k: float(v) for k, v in metrics.compute().items()}
        return {
            "val_accuracy": values["val/rewards/accuracies"],
            "val_loss": values["val/loss"],
            "val_margin": values["val/rewards/margins"],
            "chosen_logratio": logratio_sum / pairs,
        }
