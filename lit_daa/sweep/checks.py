"""The whole sweep spec checked before its first run, so that a typo surfaces in one sentence at the start instead of
as a failed run after the references have trained.

Checked: every fit config file the spec names exists and holds a YAML mapping; every objective is an importable
`Objective` class that takes `beta` and the spec's `options`; every override key (and seed option) could name a
`lit-daa fit` option. Each is cheap (file reads, imports, the cached fit parser's option names), unlike resolving
every run's fit.yaml, which costs a full parse per run.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterable

from lit_daa.errors import InputError
from lit_daa.objectives import Objective
from lit_daa.sweep.config import FitSpec, ObjectiveSpec, SweepConfig
from lit_daa.sweep.fit_config import fit_option_known
from lit_daa.sweep.spec_file import read_yaml_mapping


def check_spec(config: SweepConfig, source: str) -> None:
    """Raise `InputError` naming `source` (e.g. "sweep config runs/x.yaml") and the entry at the first fault."""
    fits: list[tuple[str, FitSpec]] = [("fit", config.fit)]
    fits += [(f"models[{i}].sft", model.sft) for i, model in enumerate(config.models) if model.sft is not None]
    for entry, spec in fits:
        for i, path in enumerate(spec.configs):
            read_yaml_mapping(path, "fit config", f" ({entry}.configs[{i}] of {source})")
    for i, objective in enumerate(config.objectives):
        check_objective(objective, f"objectives[{i}] of {source}")
    daa_keys = [("fit.overrides", key) for key in config.fit.overrides]
    daa_keys += [(f"models[{i}].overrides", key) for i, m in enumerate(config.models) for key in m.overrides]
    daa_keys += [(f"objectives[{i}].overrides", key) for i, o in enumerate(config.objectives) for key in o.overrides]
    if config.seeds is not None:
        daa_keys += [("seed_options", key) for key in config.seed_options]
    _check_keys(daa_keys, config.fit.configs, source)
    for i, model in enumerate(config.models):
        if model.sft is not None:
            keys = [(f"models[{i}].sft.overrides", key) for key in model.sft.overrides]
            if config.sft_per_seed:
                keys += [("seed_options", key) for key in config.seed_options]
            _check_keys(keys, model.sft.configs, source)


def check_objective(objective: ObjectiveSpec, where: str) -> None:
    """The objective's class path names an `Objective` class whose constructor takes beta and the given options."""
    path = objective.class_path  # a short name is checked against lit_daa.objectives when the spec is read
    module_name, _, name = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise InputError(f"objective '{path}' ({where}) cannot be imported ({err}); {_EXAMPLE}") from None
    cls = getattr(module, name, None)
    if cls is None:
        raise InputError(f"objective '{path}' ({where}): module {module_name} has no {name}; {_EXAMPLE}")
    if not (inspect.isclass(cls) and issubclass(cls, Objective)):
        raise InputError(f"objective '{path}' ({where}) is not an objective class (a lit_daa.objectives.Objective)")
    parameters = inspect.signature(cls).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    unknown = sorted({*objective.options, "beta"} - set(parameters))
    if unknown:
        raise InputError(
            f"objective '{path}' ({where}) takes no option(s) {unknown}; it takes {sorted(parameters) or 'none'}"
        )


_EXAMPLE = "give a class path such as lit_daa.objectives.DPO or a short name such as DPO"


def _check_keys(keys: Iterable[tuple[str, str]], configs: list[str], source: str) -> None:
    for entry, key in keys:
        if not fit_option_known(key, configs):
            raise InputError(
                f"option '{key}' ({entry} of {source}) is not a lit-daa fit option; `lit-daa fit --help` lists them"
            )
