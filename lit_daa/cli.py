"""The `lit-daa` command: LightningCLI's fit/validate/test/predict plus lit-daa's own subcommands."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from lit_daa.callbacks import ExportPolicy, FinalReport
from lit_daa.checkpoint_checks import check_ckpt_path
from lit_daa.checkpoint_io import (
    CheckpointWriteError,
    clear_checkpoint_folders,
    no_space_errno,
    use_atomic_checkpoints,
)
from lit_daa.cli_config import (
    config_paths,
    read_config_files,
    settle_data_source,
    settle_output_root,
    settle_precision,
    typed_values,
)
from lit_daa.console import quiet, verbose_requested
from lit_daa.data.datamodule import PreferenceDataModule
from lit_daa.errors import input_error_within
from lit_daa.module import DAAModule, NonFiniteLossError
from lit_daa.option_checks import check_before_parsing, check_options
from lit_daa.run_lock import hold_output_folder
from lit_daa.scoring import check_data_kind
from lit_daa.sharding import check_quantized_sharding
from lit_daa.strategies import check_strategy  # also registers --trainer.strategy fsdp2


class DAACLI(LightningCLI):
    """LightningCLI with the data tokenizer tied to the policy and checkpoint/export callbacks always present."""

    checks_machine = True  # refuse options this machine cannot run (a GPU asked for where none is visible)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # a model chosen by class_path (see `names_model_class`) keeps its arguments under init_args
        policy = "model.init_args.policy" if self.subclass_mode_model else "model.policy"
        parser.link_arguments(policy, "data.tokenizer")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.save_last": True, "checkpoint.save_top_k": 0})
        parser.link_arguments(
            "trainer.default_root_dir", "checkpoint.dirpath", compute_fn=lambda root: os.path.join(root, "checkpoints")
        )
        parser.add_lightning_class_args(ExportPolicy, "export")
        parser.add_lightning_class_args(FinalReport, "report")

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        self.argv = list(sys.argv[1:] if args is None else args)  # what was typed, to tell it from the configs
        super().parse_arguments(parser, args)
        if self.config.get("subcommand"):  # LightningCLI reads the checkpoint's hyperparameters right after this
            check_ckpt_path(self.config[self.config.subcommand].get("ckpt_path"))

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        check_strategy(config.trainer.strategy)
        model = config.model.init_args if self.subclass_mode_model else config.model
        check_quantized_sharding(config.trainer.strategy, model.get("quantization"), model.get("policy_dtype"))
        check_options(config, "model.init_args" if self.subclass_mode_model else "model", self.checks_machine)
        settle_data_source(config.data, self.argv)
        settle_output_root(config.trainer, self.argv)
        settle_precision(config.trainer)

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        trainer = super().instantiate_trainer(**kwargs)
        use_atomic_checkpoints(trainer)  # a kill mid-save never truncates last.ckpt (lit_daa.checkpoint_io)
        return trainer

    def _run_subcommand(self, subcommand: str) -> None:
        # A fit holds its output folder (lit_daa.run_lock) from before its first write to its end, error or not,
        # and first clears what a killed fit left in its checkpoint folder, before Lightning looks for `last`.
        objective = getattr(self.model, "objective", None)
        if objective is not None and self.datamodule is not None:  # before the data is tokenized or a model loaded
            check_data_kind(objective, bool(getattr(self.datamodule, "unpaired", False)))
        if subcommand != "fit":
            return super()._run_subcommand(subcommand)
        with hold_output_folder(self.trainer) as holder:
            if holder:
                clear_checkpoint_folders(self.trainer)
            super()._run_subcommand(subcommand)


def trainer_defaults() -> dict:
    return {
        "default_root_dir": "runs/lit-daa",
        "logger": {
            "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
            "init_args": {"save_dir": "runs/lit-daa", "name": "tensorboard", "version": ""},
        },
    }


def names_model_class(argv: list[str]) -> bool:
    """Whether the command line or one of its `--config` files picks the model by class_path.

    Without one, `model:` holds DAAModule's own options (`model: {policy: ..., objective: ...}`), as every DAA
    config does; with one (`model: {class_path: lit_daa.reward_model.RewardModule, init_args: {...}}`, or
    `--model CLASS`), any LightningModule with a `policy` argument is accepted.
    """
    for value in typed_values(argv, "--model", "--model.class_path"):
        if not value.endswith((".yaml", ".yml", ".json")):
            return True
        config = _read_yaml(value)
        if isinstance(config, dict) and "class_path" in config:
            return True
    for path in config_paths(argv):
        config = _read_yaml(path)
        if not isinstance(config, dict):
            continue
        for section in (config, *(config.get(c) for c in ("fit", "validate", "test", "predict"))):
            model = section.get("model") if isinstance(section, dict) else None
            if isinstance(model, dict) and "class_path" in model:
                return True
    return False


def _read_yaml(path: str) -> object:
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except (OSError, yaml.YAMLError):
        return None  # the parser itself reports an unreadable config


def run_lightning(argv: list[str]) -> int:
    check_before_parsing(argv, read_config_files(argv))  # seconds before the parser is built
    by_class_path = names_model_class(argv)
    DAACLI(
        None if by_class_path else DAAModule,
        PreferenceDataModule,
        subclass_mode_model=by_class_path,
        args=argv,
        trainer_defaults=trainer_defaults(),
        auto_configure_optimizers=False,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"prog": "lit-daa"},
    )
    return 0


# lit-daa's own subcommands beyond the Trainer's: each module has `main(argv) -> exit code`, imported on use so
# `lit-daa fit` does not pay for matplotlib or the sweep machinery.
EXTRA_COMMANDS: dict[str, str] = {
    "sweep": "lit_daa.sweep.cli",
    "evaluate": "lit_daa.evaluation.cli",
    "analyze": "lit_daa.analysis.analyze",
    "toy-mdp": "lit_daa.toy_mdp",
    "precompute-reference": "lit_daa.precompute",
    "best-of-n": "lit_daa.evaluation.best_of_n_cli",
}


def extra_command(name: str) -> Callable[[list[str]], int]:
    """The `main` of one of EXTRA_COMMANDS."""
    return importlib.import_module(EXTRA_COMMANDS[name]).main


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `lit-daa` console script."""
    verbose, argv = verbose_requested(list(sys.argv[1:] if argv is None else argv))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if not verbose:
        quiet()
    if not argv or argv[0] in ("-h", "--help"):
        # LightningCLI's help lists only the Trainer's subcommands; name lit-daa's own first.
        print(f"lit-daa commands: fit, validate, test, predict (Lightning) and {', '.join(EXTRA_COMMANDS)};")
        print("'lit-daa COMMAND --help' describes each; --verbose (or LIT_DAA_VERBOSE=1) shows third-party notices.\n")
    try:
        if argv and argv[0] in EXTRA_COMMANDS:
            return extra_command(argv[0])(argv[1:])
        return run_lightning(argv)
    except ValueError as err:  # an InputError, or jsonargparse's wrapping of one raised by a constructor
        found = input_error_within(err)
        if found is None:
            raise
        print(f"lit-daa: error: {found}", file=sys.stderr)
        return 2
    except (NonFiniteLossError, CheckpointWriteError) as err:
        print(f"lit-daa: error: {err}", file=sys.stderr)
        return 1
    except OSError as err:  # no room for some other file (a log, a cache, a table): say which, and what is safe
        code = no_space_errno(err)
        if code is None:
            raise
        print(
            f"lit-daa: error: no room to write {err.filename or 'a file'} ({os.strerror(code)}); checkpoints and "
            "exported models are written whole or not at all, so the last complete ones are kept: free space and "
            "rerun (a fit resumes with --ckpt_path last)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
