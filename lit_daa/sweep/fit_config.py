"""A run's `lit-daa fit` config, resolved once into `<run folder>/fit.yaml` and read from there by everyone.

The sweep knows a run as config files plus ordered option overrides (`FitOptions`). `resolve_fit_config` parses them
with the parser `lit-daa fit` uses (same links, defaults and command-line rules) and dumps the complete config, as
`--print_config` would; `write_fit_config` stores it atomically with a header recording what it was resolved from.
The fit then runs as `lit-daa fit --config <run>/fit.yaml`, the held-out scoring and the SLURM resources read the
same file (`read_fit_config`), and a rerun keeps it as long as the sweep still gives the same sources.

Structured overrides (a class_path mapping, a list) are handed to the parser as Python objects, never as JSON on a
command line, so no argv the sweep builds holds a `{`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsonargparse import Namespace
from lightning.pytorch.cli import LightningArgumentParser

from lit_daa.cli import DAACLI, names_model_class, trainer_defaults
from lit_daa.data.datamodule import PreferenceDataModule
from lit_daa.module import DAAModule

FIT_CONFIG = "fit.yaml"
SOURCES_HEADER = "# lit-daa sweep sources: "  # one JSON line: what fit.yaml was resolved from


@dataclass
class FitOptions:
    """What a run's fit is made of: config files applied in order, then `(dotted option, value)` overrides in order.

    An option ending in `+` appends to a list (`trainer.callbacks+`), as on the command line.
    """

    configs: list[str] = field(default_factory=list)
    overrides: list[tuple[str, Any]] = field(default_factory=list)

    def sources(self) -> dict[str, Any]:
        """The inputs of the resolution: each config's path and content digest, and the overrides (JSON-able)."""
        sources = {
            "configs": [{"path": path, "sha256": _digest(path)} for path in self.configs],
            "overrides": [[key, value] for key, value in self.overrides],
        }
        return json.loads(json.dumps(sources))  # as a recorded copy reads back (tuples as lists)


def _digest(path: str) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None  # the parser reports a missing config; a digest only compares sources


def scalar_arg(key: str, value: Any) -> str:
    """`--key=value` for a plain value, spelled as `lit-daa fit` reads it (strings as they are, the rest as YAML)."""
    if isinstance(value, str):
        return f"--{key}={value}"
    return f"--{key}={json.dumps(value)}"  # numbers, booleans and null: no braces


class _ParsingCLI(DAACLI):
    """DAACLI that only parses, step by step (argv for config files and plain values, objects for structured values):
    no model, data module or Trainer is built and the global seed is left alone.

    Built once per process (and kind, see `_parser`) with `args=None`, which parses nothing, and then reused:
    building the parser costs about as much as a parse. With `keep_precision` the machine-dependent precision
    default (bf16-mixed on a CUDA GPU) is left unset, so that the machine that trains, not the one that resolves (a
    SLURM login node, a CPU sweep driver), settles it when it reads fit.yaml.
    """

    keep_precision = False
    checks_machine = False  # the machine that trains checks what it can run, when it reads fit.yaml

    def _set_seed(self) -> None:
        pass

    def instantiate_classes(self) -> None:
        pass

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        if args is None:
            self.config = Namespace()
            return
        cfg: Namespace | None = None
        typed: list[str] = []  # what counts as given on the command line (see lit_daa.cli_config)
        for step in args:
            if isinstance(step, dict):
                cfg = parser.parse_object(step, namespace=cfg)
                typed += [f"--{key}=" for key in step]
            else:
                cfg = parser.parse_args(step, namespace=cfg)
                typed += step
        self.argv = typed
        self.config = cfg

    def before_instantiate_classes(self) -> None:
        if "trainer" not in self.config:  # built without arguments: nothing parsed yet
            return
        precision = self.config.trainer.get("precision")
        super().before_instantiate_classes()
        if self.keep_precision:
            self.config.trainer.precision = precision

    def parse(self, steps: list[list[str] | dict[str, Any]]) -> Namespace:
        """The config of `steps`, with the command-line rules of `lit-daa fit` applied (see lit_daa.cli_config)."""
        self.parse_arguments(self.parser, steps)
        self.before_instantiate_classes()
        return self.config


class _ResolvingCLI(_ParsingCLI):
    """The parser that writes fit.yaml: the precision default is left to the machine that trains."""

    keep_precision = True


@functools.cache
def _parser(by_class_path: bool, resolving: bool) -> _ParsingCLI:
    """The parsing CLI of one model mode (DAAModule options, or a model chosen by class_path, see
    `lit_daa.cli.names_model_class`), for resolving (precision left unset) or for reading."""
    kind = _ResolvingCLI if resolving else _ParsingCLI
    return kind(args=None, **_cli_kwargs(by_class_path))


def _cli_kwargs(by_class_path: bool) -> dict[str, Any]:
    return {
        "model_class": None if by_class_path else DAAModule,
        "datamodule_class": PreferenceDataModule,
        "subclass_mode_model": by_class_path,
        "run": False,
        "trainer_defaults": trainer_defaults(),
        "auto_configure_optimizers": False,
        "parser_kwargs": {"prog": "lit-daa fit"},
    }


def parse_fit_config(fit_args: list[str]) -> Namespace:
    """The resolved config of `lit-daa fit <fit_args>` (without the `fit` word), as the fit itself would see it."""
    return _parser(names_model_class(fit_args), resolving=False).parse([list(fit_args)]).clone()


def read_fit_config(path: Path) -> Namespace:
    """The config of `lit-daa fit --config <path>`: what a run trained with `path` (its fit.yaml) sees."""
    return parse_fit_config(["--config", str(path)])


def _overlap(a: str, b: str) -> bool:
    """Whether two dotted options touch the same value (equal, or one inside the other)."""
    a, b = a.rstrip("+"), b.rstrip("+")
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def _steps(options: FitOptions) -> list[list[str] | dict[str, Any]]:
    """Parser steps, first the config files: runs of plain `--key=value` arguments and objects of structured values.

    Every parse validates the whole config, so an override joins the latest step of its kind that no later step
    touches (the order of overrides only matters where they touch the same option); two structured values of one
    option, or of an option and its part, never share an object.
    """
    steps: list[list[str] | dict[str, Any]] = [[arg for path in options.configs for arg in ("--config", path)]]
    keys: list[list[str]] = [[]]
    for key, value in options.overrides:
        structured = isinstance(value, dict | list)
        target = None
        for i in range(len(steps) - 1, -1, -1):
            if isinstance(steps[i], dict) == structured and not (structured and any(_overlap(key, k) for k in keys[i])):
                target = i
                break
            if any(_overlap(key, k) for k in keys[i]):
                break  # a later step touches this option: keep the order
        if target is None:
            steps.append({} if structured else [])
            keys.append([])
            target = len(steps) - 1
        step = steps[target]
        if isinstance(step, dict):
            step[key] = value
        else:
            step.append(scalar_arg(key, value))
        keys[target].append(key)
    return steps


def resolve_fit_config(options: FitOptions) -> str:
    """The complete `lit-daa fit` config of `options` as YAML (what `--print_config` prints for the same input)."""
    cli = _parser(names_model_class([arg for path in options.configs for arg in ("--config", path)]), resolving=True)
    return cli.parser.dump(cli.parse(_steps(options)), skip_none=False)


def recorded_sources(path: Path) -> dict[str, Any] | None:
    """The sources recorded in a fit.yaml's header (None: no fit.yaml, or one not written by the sweep)."""
    try:
        with path.open(encoding="utf-8") as f:
            first = f.readline()
    except OSError:
        return None
    if not first.startswith(SOURCES_HEADER):
        return None
    return json.loads(first[len(SOURCES_HEADER) :])


def sources_changes(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What differs between two `FitOptions.sources()`, in words (empty: nothing)."""
    changes = []
    old_configs, new_configs = recorded.get("configs", []), current["configs"]
    if [c["path"] for c in old_configs] != [c["path"] for c in new_configs]:
        changes.append(f"config files {[c['path'] for c in old_configs]} -> {[c['path'] for c in new_configs]}")
    else:
        changes += [
            f"{new['path']} was edited" for old, new in zip(old_configs, new_configs, strict=True) if old != new
        ]
    old, new = recorded.get("overrides", []), current["overrides"]
    if old != new:
        keys = sorted({k for k, _ in old}.symmetric_difference(k for k, _ in new) | _changed_keys(old, new))
        changes.append(f"options {', '.join(keys) or '(their order)'}")
    return changes


def _changed_keys(old: list[list[Any]], new: list[list[Any]]) -> set[str]:
    before, after = dict(map(tuple, old)), dict(map(tuple, new))
    return {k for k in before.keys() & after.keys() if before[k] != after[k]}


def write_fit_config(path: Path, options: FitOptions) -> None:
    """Resolve `options` into `path` atomically (aside, then renamed), its first line recording the sources."""
    sources = options.sources()
    text = SOURCES_HEADER + json.dumps(sources) + "\n" + resolve_fit_config(options)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    staging.write_text(text, encoding="utf-8")
    os.replace(staging, path)


def stale_message(run_id: str, root: Path, changes: list[str]) -> str:
    """The one-sentence error for a started run whose fit.yaml no longer matches the sweep config."""
    return (
        f"run {run_id} was started from {root / FIT_CONFIG}, but the sweep now gives it other fit options "
        f"({'; '.join(changes)}); restore the sweep config, or delete {root} to train that run again with the new one"
    )


def fit_option_known(key: str, configs: list[str]) -> bool:
    """Whether `key` (a dotted override, `+` allowed at the end) can name a `lit-daa fit` option given `configs`.

    A key is known when the fit parser has it, or when it lies inside an option whose value the parser cannot
    list (a class chosen by class_path, a mapping): `data.source.init_args.num_train` is accepted because
    `data.source` is an option, `trainer.max_stepz` is not because `trainer` is a group whose options are all listed.
    This builds the cached parser only (no parse), so a sweep can check every override before its first run.
    """
    options, groups = _option_names(names_model_class([arg for path in configs for arg in ("--config", path)]))
    key = key.rstrip("+")
    if key in options:
        return True
    parts = key.split(".")
    prefixes = [".".join(parts[:n]) for n in range(1, len(parts))]
    return any(prefix in options and prefix not in groups for prefix in prefixes)


@functools.cache
def _option_names(by_class_path: bool) -> tuple[frozenset[str], frozenset[str]]:
    """The fit parser's option names, and those of them that are groups of further listed options."""
    parser = _parser(by_class_path, resolving=False).parser
    names = frozenset(a.dest for a in parser._actions if not a.dest.endswith(".help") and a.dest != "help")
    groups = frozenset(name for name in names if any(other.startswith(name + ".") for other in names))
    return names, groups
