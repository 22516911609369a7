"""`lit-daa sweep`: a KL-budget sweep (model x objective x beta) with intra-epoch evaluation and a results table.

    lit-daa sweep --config configs/sweeps/demo.yaml                   # run (or resume) the whole sweep
    lit-daa sweep --config configs/sweeps/demo.yaml --print_commands  # the fit/evaluate commands, run nothing
    lit-daa sweep --config configs/sweeps/demo.yaml --slurm sweep.sbatch && bash sweep.sbatch
    lit-daa sweep --config runs/sweeps/demo/sweep.yaml --only_run 3  # one run (what each SLURM task does)
    lit-daa sweep --config configs/sweeps/demo.yaml --collect --analyze
    lit-daa sweep --config configs/sweeps/demo.yaml --reevaluate     # new evaluation options, same checkpoints

The resolved config is saved as `<out_dir>/sweep.yaml`; printed commands and SLURM tasks refer to that file, so
they keep any command-line overrides. Each trained run's full `lit-daa fit` config is resolved once into
`<out_dir>/runs/<run_id>/fit.yaml` (when it is trained, printed or written into a SLURM script); fits run as
`lit-daa fit --config <run>/fit.yaml`.

The whole spec is checked before the first run (`sweep.checks`). A rerun into the same out_dir whose evaluation
options differ from the stored ones is refused unless `--reevaluate` drops the stored evaluations, so that they are
recomputed from the trained checkpoints (`sweep.stored`).
"""

from __future__ import annotations

import os
import sys
from argparse import ArgumentError
from dataclasses import fields
from pathlib import Path
from typing import Literal

import yaml
from jsonargparse import ActionConfigFile, ArgumentParser, Namespace

from lit_daa.cli_config import config_paths
from lit_daa.errors import InputError
from lit_daa.sweep.checks import check_spec
from lit_daa.sweep.config import SweepConfig
from lit_daa.sweep.driver import Sweep
from lit_daa.sweep.excerpt import excerpt
from lit_daa.sweep.slurm import slurm_script
from lit_daa.sweep.spec_file import read_yaml_mapping
from lit_daa.sweep.stored import check_evaluation_options, drop_evaluations

ACTIONS = (
    "config", "only_run", "shard", "no_collect", "stage", "print_commands", "slurm", "collect", "analyze", "excerpt",
    "excerpt_count", "reevaluate",
)  # fmt: skip


def build_parser() -> ArgumentParser:
    """The `lit-daa sweep` parser: the `SweepConfig` fields (usually from --config) and what to do with them."""
    parser = ArgumentParser(prog="lit-daa sweep", description=__doc__.splitlines()[0])
    parser.add_argument("--config", action=ActionConfigFile, help="the sweep YAML (see configs/sweeps/)")
    parser.add_class_arguments(SweepConfig, None)
    parser.add_argument("--only_run", type=int | None, default=None, help="process only the run with this index")
    parser.add_argument(
        "--shard", type=str | None, default=None, help="K/N: process every N-th DAA run from the K-th (a worker)"
    )
    parser.add_argument("--no_collect", action="store_true", help="do not rebuild the table afterwards (workers)")
    parser.add_argument("--excerpt", type=str | None, default=None, help="print samples of this run id as Markdown")
    parser.add_argument("--excerpt_count", type=int, default=6, help="samples per checkpoint in --excerpt")
    parser.add_argument(
        "--stage",
        type=Literal["all", "fit", "evaluate"],
        default="all",
        help="all: train then evaluate; fit: only train; evaluate: only evaluate (after fits run by hand)",
    )
    parser.add_argument("--print_commands", action="store_true", help="print the commands of the runs, run nothing")
    parser.add_argument("--slurm", type=str | None, default=None, help="write a SLURM array script to this path")
    parser.add_argument("--collect", action="store_true", help="only rebuild results.csv/.parquet from finished runs")
    parser.add_argument("--analyze", action="store_true", help="then run `lit-daa analyze` on the results table")
    parser.add_argument(
        "--reevaluate",
        action="store_true",
        help="drop every run's stored evaluations and evaluate its checkpoints again (after changing `evaluation`)",
    )
    return parser


def config_values(parser: ArgumentParser, cfg: Namespace) -> dict:
    """The resolved sweep config as plain data, without the action flags: what `save_config` writes."""
    values = yaml.safe_load(parser.dump(cfg, skip_check=True))
    for key in ACTIONS:
        values.pop(key, None)
    return values


def save_config(values: dict, path: Path) -> None:
    """Write the resolved sweep config (`config_values`) so commands and SLURM tasks can name one file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # workers save the same file at once
    staging.write_text(yaml.safe_dump(values, sort_keys=False), encoding="utf-8")
    os.replace(staging, path)


def describe(argv: list[str]) -> str:
    """What the sweep's options come from, for error messages: "sweep config PATH" (or the command line)."""
    paths = config_paths(argv)
    if not paths:
        return "the lit-daa sweep command line"
    return f"sweep config{'s' if len(paths) > 1 else ''} {', '.join(paths)}"


def parse(argv: list[str] | None = None) -> tuple[ArgumentParser, Namespace, SweepConfig]:
    """Parse `lit-daa sweep` arguments: the parser, the parsed namespace and the `SweepConfig` it describes.

    Each `--config` file is read first (a missing file, bad YAML or a non-mapping named with its line), and a
    parse error becomes one `InputError` naming the config instead of jsonargparse's usage text.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    for path in config_paths(argv):
        read_yaml_mapping(path, "sweep config")
    parser = build_parser()
    parser.exit_on_error = False  # errors raise ArgumentError (--help still prints and exits)
    source = describe(argv)
    try:
        cfg = parser.parse_args(argv)
    except ArgumentError as err:
        message = "; ".join(line.strip() for line in str(err).splitlines() if line.strip()).replace(":;", ":")
        raise InputError(f"{source} does not parse: {message}") from None
    try:
        init = parser.instantiate(cfg)
        config = SweepConfig(**{f.name: init[f.name] for f in fields(SweepConfig)})
    except InputError as err:
        raise InputError(f"{err} ({source})") from None
    return parser, cfg, config


def load_config(path: str | Path, *overrides: str) -> SweepConfig:
    """The `SweepConfig` of a sweep YAML, with optional command-line style overrides (e.g. `--isolation=inprocess`)."""
    return parse(["--config", str(path), *overrides])[2]


def main(argv: list[str] | None = None) -> int:
    """Run `lit-daa sweep`; returns the exit code (bad input raises InputError, which `lit-daa` reports)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, cfg, config = parse(argv)
    source = describe(argv)
    if cfg.reevaluate and (cfg.collect or cfg.excerpt is not None or cfg.shard is not None):
        raise InputError("--reevaluate cannot be combined with --collect, --excerpt or --shard; run it on its own")
    if not cfg.collect and cfg.excerpt is None:  # both only read what earlier runs wrote
        check_spec(config, source)
    sweep = Sweep(config)
    if cfg.excerpt is not None:
        runs = {run.run_id: run for run in sweep.runs}
        if cfg.excerpt not in runs:
            raise InputError(f"--excerpt {cfg.excerpt} is not a run of this sweep (e.g. {next(iter(runs))})")
        print(excerpt(runs[cfg.excerpt], config.evaluation.judge, cfg.excerpt_count))
        return 0
    saved = sweep.out_dir / "sweep.yaml"
    if cfg.shard is None:  # a worker was started from the saved file; it has nothing new to write
        values = config_values(parser, cfg)
        if cfg.reevaluate:
            dropped = drop_evaluations(sweep.runs)
            print(f"lit-daa sweep: dropped the stored evaluations of {dropped} runs; their checkpoints are kept")
        else:
            check_evaluation_options(saved, values, sweep.runs, source)
        save_config(values, saved)
    if cfg.print_commands:
        print(sweep.commands(str(saved), cfg.only_run))
        return 0
    if cfg.slurm is not None:
        out_dir = str(sweep.out_dir.resolve())
        text = slurm_script(sweep.runs, str(saved.resolve()), config.slurm_job, out_dir, os.getcwd())
        Path(cfg.slurm).write_text(text, encoding="utf-8")
        print(f"wrote {cfg.slurm}: {len(sweep.runs)} array tasks; submit with `bash {cfg.slurm}`")
        return 0
    if cfg.collect:
        code = 0
        csv_path, _ = sweep.collect()
        print(f"lit-daa sweep: table {csv_path} (and .parquet)")
    elif config.workers > 1 and cfg.only_run is None and cfg.shard is None:
        code = sweep.execute_parallel(str(saved), cfg.stage)
        csv_path = sweep.out_dir / "results.csv"
    else:
        code = sweep.execute(cfg.only_run, cfg.stage, parse_shard(cfg.shard), collect=not cfg.no_collect)
        csv_path = sweep.out_dir / "results.csv"
    if cfg.analyze:
        code = max(code, analyze(csv_path))
    return code


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """ "K/N" -> (K, N); None stays None."""
    if text is None:
        return None
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise InputError(f"--shard must be K/N with integers, e.g. 0/2, got {text!r}") from None
    return k, n


def analyze(results: Path) -> int:
    """The analysis of the finished table into <its folder>/analysis, called directly (no argv round trip)."""
    from lit_daa.analysis.analyze import analyze_table

    try:
        analyze_table(results, results.parent / "analysis")
    except InputError as err:
        print(f"lit-daa sweep: the analysis stopped: {err}")
        return 2
    return 0
