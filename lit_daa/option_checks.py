"""Checks of `lit-daa fit/validate/...` options that the libraries below would otherwise refuse late or unclearly.

Called by the CLI at its boundary: `check_before_parsing` before LightningCLI builds its parser (the precision,
whose own type error names the accepted values a dozen lines above the end, and what the command line and the
environment alone tell), `check_options` on the parsed config before any class is built (so before the model and
the data load). Options owned by a class (the LoRA rank, the Packed token budget) are checked in that class's
constructor instead, so the Python API refuses them too; a `--ckpt_path` from a config file is checked by
`lit_daa.checkpoint_checks` right after parsing, since LightningCLI reads its hyperparameters before any hook.
"""

from __future__ import annotations

import os
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lit_daa.checkpoint_checks import check_ckpt_path
from lit_daa.cli_config import typed_values
from lit_daa.errors import InputError

CACHE_VARIABLE = "LIT_DAA_CACHE"
ROOT_ADVICE = "give a folder for the run's outputs"


def _get(config: Any, key: str) -> Any:
    """The value at a dotted `key` of a parsed config (a jsonargparse Namespace or dict), or None."""
    value = config
    for part in key.split("."):
        try:
            value = value[part]
        except (KeyError, TypeError, AttributeError, IndexError):
            return None
    return value


def shown(key: str) -> str:
    """The option as typed on the command line: `model.optimizer.lr` for `model.optimizer.init_args.lr`."""
    return ".".join(part for part in key.split(".") if part != "init_args")


@dataclass(frozen=True)
class AtLeast:
    """A numeric option that must be at least `least` (above it, with `strictly`); `unlimited` is also accepted.

    `key` may hold `{model}`: the model's section of the config (`model`, or `model.init_args` when the model is
    picked by class_path).
    """

    key: str
    least: float
    hint: str
    strictly: bool = False
    unlimited: int | None = None

    def check(self, config: Any, model: str) -> None:
        key = self.key.format(model=model)
        value = _get(config, key)
        if isinstance(value, bool) or not isinstance(value, int | float) or value == self.unlimited:
            return
        if value > self.least or (value == self.least and not self.strictly):
            return
        bound = f"above {self.least:g}" if self.strictly else f"at least {self.least:g}"
        unlimited = f" (or {self.unlimited} for no limit)" if self.unlimited is not None else ""
        raise InputError(f"{shown(key)} must be {bound}{unlimited}, got {value:g}: {self.hint}")


BOUNDS = (
    AtLeast("{model}.optimizer.init_args.lr", 0, "give a learning rate such as 1e-6 (all weights) to 1e-4 (LoRA)"),
    AtLeast("trainer.max_steps", 0, "give the number of optimizer steps to train", unlimited=-1),
    AtLeast("trainer.max_epochs", 0, "give the number of epochs to train", unlimited=-1),
    AtLeast("trainer.accumulate_grad_batches", 1, "1 steps the optimizer after every batch"),
    AtLeast("checkpoint.every_n_train_steps", 0, "give a number of optimizer steps, or 0 for no step checkpoints"),
    AtLeast("checkpoint.every_n_epochs", 0, "give a number of epochs, or 0 for no epoch checkpoints"),
    AtLeast(
        "trainer.val_check_interval",
        0,
        "give a number of training batches, or a fraction of the epoch such as 0.25",
        strictly=True,
    ),
    AtLeast(
        "trainer.check_val_every_n_epoch",
        1,
        "give a number of epochs, or null to count val_check_interval across epochs",
    ),
)


def check_options(config: Any, model: str = "model", machine: bool = True) -> None:
    """Refuse bad options of a parsed fit/validate/test/predict config before any class is instantiated.

    Args:
        config: the subcommand's parsed config.
        model: the model's section of it (`model.init_args` when the model is picked by class_path).
        machine: also check what depends on this machine (a GPU asked for); False where the config is only
            resolved for another machine to run (a sweep driver or SLURM login node without the GPUs).

    Raises:
        InputError: one sentence naming the option.
    """
    for bound in BOUNDS:
        bound.check(config, model)
    if machine:
        check_accelerator(_get(config, "trainer.accelerator"))
    root = _get(config, "trainer.default_root_dir")
    if root is not None:
        check_folder(root, "trainer.default_root_dir", ROOT_ADVICE)


def check_accelerator(accelerator: Any) -> None:
    """Refuse `gpu`/`cuda` when no CUDA GPU is visible (Lightning says only 'No supported gpu backend found!')."""
    if not isinstance(accelerator, str) or accelerator.lower() not in ("gpu", "cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        raise InputError(
            f"trainer.accelerator {accelerator} needs a CUDA GPU and none is visible here: "
            "use --trainer.accelerator cpu, or auto to take a GPU when there is one"
        )


def check_folder(value: str | os.PathLike, option: str, what_to_do: str) -> None:
    """Refuse a folder option whose path, or a parent on it, is an existing file."""
    path = Path(value).expanduser()
    for candidate in (path, *path.parents):
        if candidate.exists():
            if not candidate.is_dir():
                where = "a file" if candidate == path else f"inside {candidate}, which is a file"
                raise InputError(f"{option} {value} is {where}, not a folder: {what_to_do}")
            return


def check_cache_folder() -> None:
    """Refuse a $LIT_DAA_CACHE that is a file (embedded models and caches are written under it)."""
    value = os.environ.get(CACHE_VARIABLE)
    if value:
        check_folder(value, CACHE_VARIABLE, "point it at a folder, or unset it to use ~/.cache/lit_daa")


def accepted_precisions() -> list[str]:
    """Every `trainer.precision` value Lightning accepts, as typed (its type is a union of Literals)."""
    from lightning.fabric.plugins.precision.precision import _PRECISION_INPUT

    def flatten(hint: Any) -> Iterable[Any]:
        for arg in typing.get_args(hint):
            yield from flatten(arg) if typing.get_args(arg) else (arg,)

    return list(dict.fromkeys(str(value) for value in flatten(_PRECISION_INPUT)))


def check_before_parsing(argv: Sequence[str], configs: Sequence[tuple[str, Any]]) -> None:
    """What can be refused before LightningCLI builds its parser (seconds): $LIT_DAA_CACHE, the precision, and the
    `--ckpt_path` and `--trainer.default_root_dir` typed on the command line (from a config file, they are checked
    after parsing: the checkpoint by `DAACLI.parse_arguments`, the folder by `check_options`).

    Args:
        argv: the command line after `lit-daa`, subcommand first.
        configs: the `--config` files already read, as (path, content) pairs.
    """
    check_cache_folder()
    for value in typed_values(argv, "--ckpt_path"):
        check_ckpt_path(value)
    for value in typed_values(argv, "--trainer.default_root_dir"):
        check_folder(value, "trainer.default_root_dir", ROOT_ADVICE)
    check_precision(argv, configs)


def check_precision(argv: Sequence[str], configs: Sequence[tuple[str, Any]]) -> None:
    """Refuse a `trainer.precision` that Lightning would not accept, from the command line or a config file.

    Checked before parsing: the parser's own message lists every type it tried, with the accepted values far
    from its last line.
    """
    subcommand = argv[0] if argv else ""
    given: list[tuple[str, Any]] = []
    for path, content in configs:
        for key in ("trainer.precision", f"{subcommand}.trainer.precision"):
            value = _get(content, key)
            if value is not None:
                given.append((f"trainer.precision in {path}", value))
    given.extend(("--trainer.precision", value) for value in typed_values(argv, "--trainer.precision"))
    if not given:
        return
    where, value = given[-1]  # the command line overrides the configs, a later config an earlier one
    accepted = accepted_precisions()
    if str(value) not in accepted and str(value).lower() not in ("null", "none"):
        raise InputError(f"{where} '{value}' is not a precision Lightning knows: give one of {', '.join(accepted)}")
