"""Callbacks the CLI always adds: export the trained policy in Hugging Face format, print a final report."""

from __future__ import annotations

import copy
from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_only


def run_dir(trainer: Trainer) -> Path:
    """The folder a run writes into: the Trainer's default_root_dir."""
    return Path(trainer.default_root_dir)


class ExportPolicy(Callback):
    """At the end of fit, save the policy (and tokenizer) with `save_pretrained` into `<run dir>/<dirname>`.

    A LoRA policy is saved merged into its base weights, so `AutoModelForCausalLM.from_pretrained` loads it
    without peft; its adapters alone go to `<dirname>-adapter`.

    Args:
        dirname: folder name under the Trainer's default_root_dir.
        enabled: set false to skip the export.
    """

    def __init__(self, dirname: str = "hf_policy", enabled: bool = True) -> None:
        self.dirname = dirname
        self.enabled = enabled
        self.saved_to: Path | None = None

    @rank_zero_only
    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.enabled or trainer.interrupted:
            return
        target = run_dir(trainer) / self.dirname
        save_hf_policy(pl_module, target)
        self.saved_to = target


def save_hf_policy(pl_module: LightningModule, target: Path) -> None:
    """Save `pl_module.policy` and its tokenizer with `save_pretrained` into `target`.

    A peft policy: its adapters go to `<target>-adapter` and the weights merged into the base go to `target`
    (not possible for a 4-bit base, which keeps the adapters only).
    """
    policy = pl_module.policy
    if hasattr(policy, "merge_and_unload"):
        policy.save_pretrained(target.with_name(target.name + "-adapter"))
        if not getattr(policy.base_model.model, "is_loaded_in_4bit", False):
            copy.deepcopy(policy).merge_and_unload().save_pretrained(target)
    else:
        policy.save_pretrained(target)
    pl_module.tokenizer.save_pretrained(target)


class FinalReport(Callback):
    """Print the last validation metrics, where the logs and the exported policy are, when fit ends."""

    @rank_zero_only
    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        lines = ["", "lit-daa: fit finished"]
        if "val/rewards/accuracies" in metrics:
            lines.append(f"  held-out implicit-reward accuracy: {metrics['val/rewards/accuracies']:.4f}")
        for key in ("val/loss", "val/rewards/margins", "val/logps/chosen", "val/logps/rejected"):
            if key in metrics:
                lines.append(f"  {key}: {metrics[key]:.4f}")
        lines.append(f"  global step: {trainer.global_step}")
        if trainer.logger is not None and trainer.logger.log_dir:
            lines.append(f"  logs (TensorBoard): {trainer.logger.log_dir}")
        for cb in trainer.callbacks:
            if isinstance(cb, ExportPolicy) and cb.saved_to is not None:
                lines.append(f"  policy (Hugging Face format): {cb.saved_to}")
        print("\n".join(lines), flush=True)
