"""Callbacks the CLI always adds: export the trained policy in Hugging Face format, print a final report."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_only

from lit_daa.checkpoint_io import CheckpointWriteError, no_space_errno, swap_in
from lit_daa.export import export_policy
from lit_daa.model_card import write_model_card


def run_dir(trainer: Trainer) -> Path:
    """The folder a run writes into: the Trainer's default_root_dir."""
    return Path(trainer.default_root_dir)


class ExportPolicy(Callback):
    """At the end of fit, save the policy (and tokenizer) with `save_pretrained` into `<run dir>/<dirname>`.

    See `lit_daa.export`: a LoRA or QLoRA policy is saved merged (QLoRA's 4-bit base dequantized) so that
    `AutoModelForCausalLM.from_pretrained` loads it without peft, with its adapters alone in `<dirname>-adapter`;
    a sharded policy is gathered to rank 0.

    Args:
        dirname: folder name under the Trainer's default_root_dir.
        enabled: set false to skip the export.
    """

    def __init__(self, dirname: str = "hf_policy", enabled: bool = True) -> None:
        self.dirname = dirname
        self.enabled = enabled
        self.saved: dict[str, Path] = {}

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Every rank takes part: gathering a sharded policy is collective. Rank 0 writes.
        if not self.enabled or trainer.interrupted:
            return
        self.saved = publish_hf_policy(trainer, pl_module, run_dir(trainer) / self.dirname)


def save_hf_policy(trainer: Trainer, pl_module: LightningModule, target: Path) -> dict[str, Path]:
    """Export `pl_module.policy` and its tokenizer to `target` (see `lit_daa.export.export_policy`).

    Call on every rank; returns what global rank 0 wrote ({} on the others): "policy" and, for peft, "adapter".
    """
    written = export_policy(pl_module.policy, pl_module.tokenizer, target, trainer.global_rank)
    if "policy" in written:
        write_model_card(written["policy"], trainer, pl_module)  # how the weights were made
    return written


def publish_hf_policy(
    trainer: Trainer, pl_module: LightningModule, target: Path, files: Mapping[str, str] | None = None
) -> dict[str, Path]:
    """`save_hf_policy` into `target`, whole or not at all: written aside, then renamed into place.

    A kill or a full disk while writing leaves `target` as it was (the previous export, or nothing) and a
    `.staging-<name>` folder that the next publish removes; a reader never finds a half-written model. `files`
    (name -> text) are written into the policy folder before it is published. Call on every rank (a sharded policy
    is gathered collectively); rank 0 writes and gets {what: published folder}, the other ranks {}.
    """
    target = Path(target)
    staging = target.parent / f".staging-{target.name}"
    if trainer.is_global_zero:
        shutil.rmtree(staging, ignore_errors=True)  # left by a publish that was killed
        staging.mkdir(parents=True)
    try:
        written = save_hf_policy(trainer, pl_module, staging / target.name)
        for name, text in (files or {}).items() if trainer.is_global_zero else ():
            (written["policy"] / name).write_text(text)
    except Exception as err:
        code = no_space_errno(err)
        if code is None:
            raise
        shutil.rmtree(staging, ignore_errors=True)
        raise no_room_to_publish(trainer, target, code) from None
    published: dict[str, Path] = {}
    if trainer.is_global_zero:
        # the policy folder last: it is the one readers look for, so it appears only once the rest is in place
        for key in sorted(written, key=lambda k: k == "policy"):
            published[key] = target.parent / written[key].name
            swap_in(written[key], published[key])
        shutil.rmtree(staging, ignore_errors=True)
    trainer.strategy.barrier("publish policy")
    return published


def no_room_to_publish(trainer: Trainer, target: Path, code: int) -> CheckpointWriteError:
    """The one sentence for a policy folder that did not fit: what is left, and how to write it again."""
    kept = f"the previous {target.name} there is unchanged" if target.exists() else f"no {target.name} was written"
    last = Path(getattr(trainer.checkpoint_callback, "last_model_path", "") or "")
    if last.name and last.exists():
        kept += f", and the trained state is in {last}: free space and resume with --ckpt_path {last} to write it"
    else:
        kept += ": free space and rerun"
    error = CheckpointWriteError(f"no room to write {target} ({os.strerror(code)}); {kept}")
    error.errno = code
    return error


EXPORT_LABELS = {
    "policy": "policy (Hugging Face format)",
    "adapter": "LoRA adapter (peft)",
}


class FinalReport(Callback):
    """Print the last validation metrics, where the logs and the exported policy are, when fit ends."""

    @rank_zero_only
    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        lines = ["", "lit-daa: fit finished"]
        if "val/rewards/accuracies" in metrics:
            lines.append(f"  held-out implicit-reward accuracy: {metrics['val/rewards/accuracies']:.4f}")
        if "val/rm_accuracy" in metrics:
            lines.append(f"  held-out reward-model accuracy: {metrics['val/rm_accuracy']:.4f}")
        for key in (
            "val/rm_loss",
            "val/rm_margin",
            "val/loss",
            "val/rewards/margins",
            "val/logps/chosen",
            "val/logps/rejected",
            "val/kl",
            "val/sqrt_kl",
        ):
            if key in metrics:
                lines.append(f"  {key}: {metrics[key]:.4f}")
        lines.append(f"  global step: {trainer.global_step}")
        if trainer.logger is not None and trainer.logger.log_dir:
            lines.append(f"  logs (TensorBoard): {trainer.logger.log_dir}")
        for cb in trainer.callbacks:
            if isinstance(cb, ExportPolicy):
                for what, folder in cb.saved.items():
                    # only what was written: a folder is named here only if it holds a model or an adapter
                    if (folder / "config.json").is_file() or (folder / "adapter_config.json").is_file():
                        lines.append(f"  {EXPORT_LABELS[what]}: {folder}")
        print("\n".join(lines), flush=True)
