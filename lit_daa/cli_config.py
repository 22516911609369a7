"""Adjustments of a parsed `lit-daa fit` config that make the command line compose with config files.

- A data source given on the command line replaces the config's, whichever kind each is.
- Everything a run writes goes under `trainer.default_root_dir`, the logger's `save_dir` included, unless that
  `save_dir` is itself given on the command line.
- With no precision set anywhere, a CUDA GPU with bfloat16 trains in `bf16-mixed`.

`read_config_files` reads every `--config` file first, so that a YAML error or a file that is not a mapping is
named with its file and line (the parser itself says `"<unicode string>", line 5`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from lit_daa.errors import InputError

SOURCE_OPTIONS = ("train_path", "hub_dataset", "source")
CONFIG_FLAGS = ("--config", "-c")


def typed_values(argv: Sequence[str], *flags: str) -> list[str]:
    """The values given to any of `flags` (`--flag VALUE` or `--flag=VALUE`) among `argv`, in order."""
    values = []
    for i, arg in enumerate(argv):
        if arg in flags and i + 1 < len(argv):
            values.append(argv[i + 1])
        values.extend(arg.split("=", 1)[1] for flag in flags if arg.startswith(flag + "="))
    return values


def config_paths(argv: Sequence[str]) -> list[str]:
    """The values of every `--config`/`-c` among `argv`, in order."""
    return typed_values(argv, *CONFIG_FLAGS)


def read_config_file(path: str) -> dict:
    """The mapping a `--config` file holds.

    Raises:
        InputError: the file is not valid YAML (its line and column named) or holds something else than a mapping.
    """
    import yaml

    with open(path, encoding="utf-8") as f:
        try:
            content = yaml.safe_load(f)
        except yaml.MarkedYAMLError as err:
            mark = err.problem_mark or err.context_mark
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            raise InputError(
                f"--config {path} is not valid YAML{where} ({err.problem or err.context}): fix that line"
            ) from None
        except yaml.YAMLError as err:
            raise InputError(f"--config {path} is not valid YAML ({str(err).splitlines()[0]}): fix it") from None
    if not isinstance(content, dict):
        held = "nothing" if content is None else f"a {type(content).__name__}"
        raise InputError(
            f"--config {path} holds {held}, not a mapping of options (trainer:, model:, data:, ...): "
            "give a YAML file of `option: value` lines"
        )
    return content


def read_config_files(argv: Sequence[str]) -> list[tuple[str, dict]]:
    """Every `--config` file among `argv` that exists, read and checked, as (path, content) pairs.

    A value that is no file is left to the parser, which accepts inline YAML there and names a missing file.
    """
    return [(path, read_config_file(path)) for path in config_paths(argv) if os.path.isfile(path)]


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
