"""The model card (`README.md`) written into every Hugging Face export: how the weights were made."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from lightning.pytorch import LightningModule, Trainer

import lit_daa
from lit_daa.models import describe_model


def model_card(trainer: Trainer, pl_module: LightningModule) -> str:
    """Markdown naming the base model, objective, reference, data (with its fingerprint), progress, metrics, command."""
    from lit_daa.reference_cache import data_fingerprint

    datamodule = trainer.datamodule
    source = getattr(datamodule, "source", None)
    train = getattr(datamodule, "train_dataset", None)
    data = type(source).__name__ if source is not None else "unknown"
    if source is not None and hasattr(source, "split_name"):
        data = f"{source.split_name('train')} ({type(source).__name__})"
    fingerprint = data_fingerprint(train)[:16] if train is not None else "unknown"
    batch = int(getattr(datamodule, "batch_size", 0) or 0)
    kind = "rows" if getattr(datamodule, "unpaired", False) else "pairs"  # unpaired rows (KTO) or preference pairs
    pairs_seen = trainer.global_step * batch * trainer.accumulate_grad_batches * trainer.world_size
    reference = type(pl_module.reference).__name__
    reference_name = pl_module.reference_name or pl_module.policy_name
    lines = [
        "---",
        "library_name: transformers",
        "tags: [lit-daa, preference-optimization, dpo]",
        "---",
        "",
        f"# {pl_module.policy_name} trained with {type(pl_module.objective).__name__} by lit-daa",
        "",
        f"- base model: {describe_model(pl_module.policy_name)}"
        + (" (LoRA merged into it)" if pl_module.lora is not None else ""),
        f"- objective: `{type(pl_module.objective).__name__}({pl_module.objective.extra_repr()})`",
        f"- reference: {reference} of {describe_model(reference_name)} ({pl_module.reference_dtype})",
        f"- data: {data}, {len(train) if train is not None else '?'} training {kind}, token fingerprint {fingerprint}",
        f"- progress: {trainer.global_step} optimizer steps, {pairs_seen} {kind} seen (epoch {trainer.current_epoch})",
        f"- lit-daa {getattr(lit_daa, '__version__', '?')}",
        "",
        *card_tail(trainer),
    ]
    return "\n".join(lines)


def card_tail(trainer: Trainer) -> list[str]:
    """The lines every model card ends with: the validation metrics at export and the command that made it."""
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    return [
        "## Validation metrics at export",
        "",
        *([f"- {k}: {v:.4f}" for k, v in sorted(metrics.items())] or ["- none logged yet"]),
        "",
        "## How it was made",
        "",
        "```",
        _command(trainer),
        "```",
        "",
    ]


def _command(trainer: Trainer) -> str:
    config = Path(trainer.default_root_dir) / "config.yaml"
    command = "lit-daa " + shlex.join(sys.argv[1:]) if Path(sys.argv[0]).name in ("lit-daa", "cli.py") else ""
    if not command.strip() or command.strip() == "lit-daa":
        command = "lit-daa fit (called from Python)"
    return command + (f"\n# resolved config: {config}" if config.is_file() else "")


def write_model_card(folder: Path, trainer: Trainer, pl_module: LightningModule) -> None:
    # a module that is not a DAA run (lit_daa.reward_model.RewardModule) describes itself
    own = getattr(pl_module, "hf_model_card", None)
    (Path(folder) / "README.md").write_text(own(trainer) if own is not None else model_card(trainer, pl_module))
