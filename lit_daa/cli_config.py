"""Adjustments of a parsed `lit-daa fit` config that make the command line compose with config files.

- A data source given on the command line replaces the config's, whichever kind each is.
- Everything a run writes goes under `trainer.default_root_dir`, the logger's `save_dir` included, unless that
  `save_dir` is itself given on the command line.
- With no precision set anywhere, a CUDA GPU with bfloat16 trains in `bf16-mixed`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lit_daa.errors import InputError

SOURCE_OPTIONS = ("train_path", "hub_dataset", "source")


def on_command_line(argv: Sequence[str], option: str) -> bool:
    """Whether `--option VALUE` or `--option=VALUE` (not a nested `--option.x`) is among `argv`."""
    flag = f"--{option}"
    return any(arg == flag or arg.startswith(flag + "=") for arg in argv)


def settle_data_source(data: Any, argv: Sequence[str]) -> None:
    """Keep the one training-data option the command line gives when the configs give another one too."""
    given = [name for name in SOURCE_OPTIONS if data.get(name) is not None]
    if len(given) < 2:
        return
    typed = [name for name in given if on_command_line(argv, f"data.{name}")]
    if len(typed) > 1:
        raise InputError(
            "give the training data with one of " + " and ".join(f"--data.{n}" for n in typed) + ", not both"
        )
    if not typed:
        drop = ", ".join(f"--data.{n} null" for n in given[1:])
        raise InputError(
            f"the configs give the training data twice ({' and '.join('data.' + n for n in given)}); "
            f"keep one, e.g. with {drop}"
        )
    for name in given:
        if name != typed[0]:
            data[name] = None
    if typed[0] != "train_path" and data.get("val_path") is not None and not on_command_line(argv, "data.val_path"):
        data["val_path"] = None  # the config's validation file went with its training file


def settle_output_root(trainer: Any, argv: Sequence[str]) -> None:
    """Put the logger's files under default_root_dir unless its save_dir was typed on the command line."""
    logger = trainer.get("logger")
    init_args = logger.get("init_args") if hasattr(logger, "get") else None
    if init_args is None or "save_dir" not in init_args or trainer.get("default_root_dir") is None:
        return
    if on_command_line(argv, "trainer.logger.init_args.save_dir") or on_command_line(argv, "trainer.logger.save_dir"):
        return
    init_args["save_dir"] = trainer["default_root_dir"]


def default_precision(accelerator: Any, precision: Any, cuda: bool, bf16: bool) -> Any:
    """The precision to train in: the given one, else bf16-mixed on a CUDA GPU that supports it, else None."""
    if precision is not None:
        return precision
    gpu = str(accelerator) in ("auto", "gpu", "cuda") or str(accelerator).endswith("CUDAAccelerator")
    return "bf16-mixed" if gpu and cuda and bf16 else None


def settle_precision(trainer: Any) -> None:
    import torch

    cuda = torch.cuda.is_available()
    trainer["precision"] = default_precision(
        trainer.get("accelerator"), trainer.get("precision"), cuda, cuda and torch.cuda.is_bf16_supported()
    )
