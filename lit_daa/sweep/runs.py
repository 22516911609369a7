"""The runs of a sweep: a reference per model (trained by SFT or given; with `sft_per_seed` one per model and seed),
then a DAA run per (model, objective, beta[, seed]).

Each run owns a folder `<out_dir>/runs/<run_id>/`::

    fit.yaml                the run's complete `lit-daa fit` config, resolved once (see `sweep.fit_config`); the fit
                            runs as `lit-daa fit --config fit.yaml`, the held-out scoring and SLURM read it too
    checkpoints/last.ckpt   Lightning's checkpoint (a killed run resumes from it with --ckpt_path last)
    hf_policy/              the policy at the end of fit (for a trained reference: the reference model)
    intra_epoch/            DAA runs: Hugging Face checkpoints within the epoch (IntraEpochCheckpoints)
    evals/                  one JSON row (and samples JSONL) per evaluated checkpoint, so none is evaluated twice
    status.json             every fit attempt: its arguments' resume point and exit code
    FIT_DONE                training finished
    DONE.json               the run's result rows: the run is finished and skipped from then on
"""

from __future__ import annotations

import json
import math
import shutil
import warnings
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from lit_daa.checkpoints import list_checkpoints
from lit_daa.errors import InputError
from lit_daa.sweep.config import FitSpec, ModelSpec, ObjectiveSpec, SweepConfig
from lit_daa.sweep.fit_config import (
    FIT_CONFIG,
    FitOptions,
    recorded_sources,
    sources_changes,
    stale_message,
    write_fit_config,
)
from lit_daa.sweep.table import REFERENCE_OBJECTIVE, read_rows, write_json
from lit_daa.sweep.targets import EvalTarget

FIT_DONE = "FIT_DONE"
DONE = "DONE.json"
INTRA_EPOCH_DIR = "intra_epoch"
EVALS_DIR = "evals"


def daa_run_id(model: ModelSpec, objective: ObjectiveSpec, beta: float, seed: int | None = None) -> str:
    """`{model}-{objective}[-{variant}]-beta{beta}[-s{seed}]` (docs/results_schema.md); the seed part only when the
    sweep has several seeds, so single-seed run folders keep their names."""
    variant = f"-{objective.variant}" if objective.variant else ""
    suffix = "" if seed is None else f"-s{seed}"
    return f"{model.name}-{objective.label}{variant}-beta{beta:g}{suffix}"


def reference_run_id(model: ModelSpec, seed: int | None = None) -> str:
    """`{model}-sft`, or `{model}-sft-s{seed}` for a per-seed reference (the sweep's `sft_per_seed`)."""
    return f"{model.name}-sft" if seed is None else f"{model.name}-sft-s{seed}"


def run_dir_options(root: Path) -> list[tuple[str, Any]]:
    """Point a fit's outputs (checkpoints, export, logs) into the run's folder."""
    return [("trainer.default_root_dir", str(root)), ("trainer.logger.init_args.save_dir", str(root))]


def seed_overrides(seed_options: tuple[str, ...], seed: int) -> list[tuple[str, Any]]:
    """The seed given to every option in the sweep's `seed_options`."""
    return [(option, seed) for option in seed_options]


class Run(ABC):
    """One unit of a sweep with its own folder; see the module docstring for what the folder holds.

    Args:
        index: position in the sweep (`--only_run INDEX`, the SLURM array index).
        run_id: `{model}-sft[-s{seed}]` or `{model}-{objective}[-{variant}]-beta{beta}[-s{seed}]`.
        model: the model size it belongs to.
        root: its folder.
    """

    objective_label: str = ""
    variant: str = ""
    beta: float = math.nan
    seed: int = 0

    def __init__(self, index: int, run_id: str, model: ModelSpec, root: Path) -> None:
        self.index, self.run_id, self.model, self.root = index, run_id, model, root

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.index}, {self.run_id!r})"

    @property
    def done(self) -> bool:
        return (self.root / DONE).is_file()

    @property
    def fit_done(self) -> bool:
        return (self.root / FIT_DONE).is_file()

    @property
    def needs_fit(self) -> bool:
        return self.fit_options() is not None

    @property
    def fit_config_path(self) -> Path:
        """Where the run's resolved `lit-daa fit` config lives (see `fit_config`)."""
        return self.root / FIT_CONFIG

    @abstractmethod
    def fit_options(self) -> FitOptions | None:
        """The config files and overrides that make this run's fit; None: nothing to train."""

    @property
    def started(self) -> bool:
        """Whether anything of this run was trained or evaluated (a fit attempt, a checkpoint, a row)."""
        return any((self.root / name).exists() for name in ("status.json", "checkpoints", FIT_DONE, DONE))

    def stale_fit_config(self) -> list[str]:
        """How the sweep's fit options for this run differ from those its fit.yaml was resolved from (empty: they
        do not, or there is no fit.yaml yet)."""
        options = self.fit_options()
        recorded = recorded_sources(self.fit_config_path)
        if options is None or recorded is None:
            return []
        return sources_changes(recorded, options.sources())

    def fit_config(self) -> Path | None:
        """The run's fit.yaml, resolved now unless an earlier call resolved it from the same sources; None: nothing
        to train.

        A started run whose sources changed is an error (its checkpoints and rows came from the old config); a run
        that never started is resolved again with a note.
        """
        options = self.fit_options()
        if options is None:
            return None
        path = self.fit_config_path
        recorded = recorded_sources(path)
        if recorded is not None:
            changes = sources_changes(recorded, options.sources())
            if not changes:
                return path
            if self.started:
                raise InputError(stale_message(self.run_id, self.root, changes))
            print(f"lit-daa sweep: {self.run_id}: resolving {path} again ({'; '.join(changes)})")
        write_fit_config(path, options)
        return path

    def fit_args(self) -> list[str] | None:
        """The `lit-daa fit` arguments (without `fit`) that train this run: `--config <run>/fit.yaml`; None: nothing
        to train. Resolves fit.yaml when needed (see `fit_config`)."""
        path = self.fit_config()
        return None if path is None else ["--config", str(path)]

    def resume_args(self) -> list[str]:
        """`--ckpt_path last` when an earlier attempt left a checkpoint, so a killed run goes on from there."""
        return ["--ckpt_path=last"] if (self.root / "checkpoints" / "last.ckpt").is_file() else []

    def blocked_by(self) -> str | None:
        """Why this run cannot train yet (None: it can)."""
        return None

    def trained_elsewhere(self) -> bool:
        """Whether a fit run by hand (a printed command) finished: Lightning's export exists only after one."""
        return (self.root / "hf_policy").is_dir()

    @abstractmethod
    def eval_targets(self) -> list[EvalTarget]:
        """What to evaluate for this run's result rows, in row order."""

    def row_base(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "objective": self.objective_label,
            "variant": self.variant,
            "beta": self.beta,
            "seed": self.seed,
            "model": self.model.name,
        }

    def mark_fit_done(self) -> None:
        (self.root / FIT_DONE).write_text("")

    def mark_done(self, rows: list[dict[str, Any]]) -> None:
        write_json(self.root / DONE, rows)

    @property
    def evaluated(self) -> bool:
        """Whether any row of this run is stored (an evaluated checkpoint, or the finished run's rows)."""
        return self.done or any((self.root / EVALS_DIR).glob("*.json"))

    def drop_evaluations(self) -> None:
        """Forget this run's rows (DONE.json and evals/), keeping what training made, so that the next pass
        evaluates its checkpoints again (`lit-daa sweep --reevaluate`)."""
        (self.root / DONE).unlink(missing_ok=True)  # first: a run without DONE is never read as finished
        shutil.rmtree(self.root / EVALS_DIR, ignore_errors=True)

    def rows(self) -> list[dict[str, Any]]:
        """The rows of a finished run (empty when it is not finished)."""
        return read_rows(self.root / DONE) if self.done else []

    def record_attempt(self, **attempt: Any) -> None:
        """Append one fit attempt to status.json (a history of starts, resumes and exit codes)."""
        write_json(self.root / "status.json", [*self.attempts(), attempt])

    def finish_attempt(self, **outcome: Any) -> None:
        """Add the outcome (e.g. returncode) to the last attempt in status.json."""
        history = self.attempts()
        history[-1].update(outcome)
        write_json(self.root / "status.json", history)

    def attempts(self) -> list[dict[str, Any]]:
        """The fit attempts recorded in status.json, oldest first."""
        path = self.root / "status.json"
        return json.loads(path.read_text()) if path.is_file() else []


class ReferenceRun(Run):
    """The reference (SFT) model of one size (and seed, with `sft_per_seed`); its row is the d = 0 point, objective
    `SFT`, with the reference's seed (0 for a reference shared by every seed)."""

    objective_label = REFERENCE_OBJECTIVE

    @property
    @abstractmethod
    def model_path(self) -> str:
        """What DAA runs load as policy and reference: a folder, hub id or embedded name."""

    def eval_targets(self) -> list[EvalTarget]:
        position = {"step": 0, "examples_seen": 0, "epoch_fraction": 0.0, "is_final": False}
        cache = self.root / EVALS_DIR / "reference.json"
        return [EvalTarget(self.model_path, self.model_path, math.nan, cache, {**self.row_base(), **position})]


class TrainedReference(ReferenceRun):
    """A reference made by the model's `sft` fit; the exported policy is the reference.

    Args:
        seed: with `seed_options`, the seed this reference is trained with (`sft_per_seed`); None: the seeds the
            fit configs set, shared by every DAA seed.
        seed_options: the options the seed is given to.
    """

    def __init__(
        self,
        index: int,
        model: ModelSpec,
        root: Path,
        seed: int | None = None,
        seed_options: tuple[str, ...] = (),
    ) -> None:
        super().__init__(index, reference_run_id(model, seed), model, root)
        assert model.sft is not None
        self.spec: FitSpec = model.sft
        self.seed = 0 if seed is None else seed
        self.seed_options = seed_options if seed is not None else ()

    @property
    def model_path(self) -> str:
        return str(self.root / "hf_policy")

    def fit_options(self) -> FitOptions:
        # the export is the product of this run, so it is switched on whatever the configs say
        overrides = [*self.spec.pairs(), *run_dir_options(self.root), ("export.enabled", True)]
        return FitOptions(list(self.spec.configs), overrides + seed_overrides(self.seed_options, self.seed))


class GivenReference(ReferenceRun):
    """An existing reference model: nothing to train, only its d = 0 row to evaluate."""

    def __init__(self, index: int, model: ModelSpec, root: Path) -> None:
        super().__init__(index, f"{model.name}-sft", model, root)

    @property
    def model_path(self) -> str:
        assert self.model.reference is not None
        return self.model.reference

    @property
    def fit_done(self) -> bool:
        return True

    def fit_options(self) -> None:
        return None


class DAARun(Run):
    """One (model, objective, beta) run from the model's reference, with intra-epoch checkpoints.

    Args:
        reference: the model's reference run (policy initialisation and reference).
        objective: the objective spec.
        beta: this run's beta.
        base: the sweep's common fit.
        fractions: where in the epoch checkpoints are saved.
    """

    def __init__(
        self,
        index: int,
        model: ModelSpec,
        root: Path,
        reference: ReferenceRun,
        objective: ObjectiveSpec,
        beta: float,
        base: FitSpec,
        fractions: list[float],
        seed: int = 0,
        seed_options: tuple[str, ...] = (),
        run_id: str | None = None,
    ) -> None:
        super().__init__(index, run_id or daa_run_id(model, objective, beta), model, root)
        self.reference, self.objective, self.beta = reference, objective, beta
        self.objective_label, self.variant = objective.label, objective.variant
        self.base, self.fractions = base, fractions
        self.seed, self.seed_options = seed, seed_options

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / INTRA_EPOCH_DIR

    def fit_options(self) -> FitOptions:
        init_args = {**self.objective.options, "beta": self.beta}
        objective = {"class_path": self.objective.class_path, "init_args": init_args}
        callback = {
            "class_path": "lit_daa.checkpoints.IntraEpochCheckpoints",
            "init_args": {"fractions": list(self.fractions), "dirname": INTRA_EPOCH_DIR},
        }
        overrides = [
            *self.base.pairs(),
            *FitSpec(overrides=self.model.overrides).pairs(),
            *run_dir_options(self.root),
            ("model.policy", self.reference.model_path),
            ("model.objective", objective),
            ("trainer.callbacks+", callback),
            *seed_overrides(self.seed_options, self.seed),
            *FitSpec(overrides=self.objective.overrides).pairs(),
        ]
        return FitOptions(list(self.base.configs), overrides)

    def blocked_by(self) -> str | None:
        if self.reference.fit_done:
            return None
        return f"its reference {self.reference.run_id} (run {self.reference.index}) has not finished training"

    def trained_elsewhere(self) -> bool:
        return super().trained_elsewhere() or any(info.is_final for _, info in list_checkpoints(self.checkpoints_dir))

    def eval_targets(self) -> list[EvalTarget]:
        """One target per intra-epoch checkpoint, by step."""
        checkpoints = list_checkpoints(self.checkpoints_dir)
        if not checkpoints:
            warnings.warn(
                f"{self.run_id} has no intra-epoch checkpoints in {self.checkpoints_dir} (did trainer.max_steps stop "
                "it before the first fraction of the epoch?); it adds no rows",
                stacklevel=2,
            )
        fit_config = self.fit_config() if checkpoints else None  # the file the run was trained with
        targets = []
        for folder, info in checkpoints:
            position = {
                "step": info.step,
                "examples_seen": info.examples_seen,
                "epoch_fraction": info.epoch_fraction,
                "is_final": info.is_final,
            }
            cache = self.root / EVALS_DIR / f"{folder.name}.json"
            row = {**self.row_base(), **position}
            targets.append(EvalTarget(str(folder), self.reference.model_path, self.beta, cache, row, fit_config))
        return targets


def expand(config: SweepConfig) -> list[Run]:
    """The sweep's runs in order: the references first (per model, or per model and seed with `sft_per_seed`), then
    model x objective x beta x seed."""
    runs_dir = Path(config.out_dir) / "runs"
    seeds = config.seeds or [0]
    seeded = len(seeds) > 1
    seed_options = tuple(config.seed_options) if config.seeds is not None else ()
    grid = [
        (model, objective, beta, seed)
        for model in config.models
        for objective in config.objectives
        if objective.models is None or model.name in objective.models
        for beta in objective.beta_values()
        for seed in objective.seeds or seeds
    ]
    references: dict[tuple[str, int | None], ReferenceRun] = {}
    for model in config.models:
        if model.sft is None:
            references[model.name, None] = GivenReference(len(references), model, runs_dir / reference_run_id(model))
        elif not config.sft_per_seed:
            key = (model.name, None)
            references[key] = TrainedReference(len(references), model, runs_dir / reference_run_id(model))
        else:  # the sweep's seeds, then any other seed an objective of this model trains with, in order
            for seed in dict.fromkeys([*seeds, *(s for m, _, _, s in grid if m is model)]):
                root = runs_dir / reference_run_id(model, seed)
                references[model.name, seed] = TrainedReference(len(references), model, root, seed, seed_options)
    runs: list[Run] = list(references.values())
    for model, objective, beta, seed in grid:
        run_id = daa_run_id(model, objective, beta, seed if seeded else None)
        reference = references.get((model.name, seed)) or references[model.name, None]
        runs.append(
            DAARun(
                len(runs),
                model,
                runs_dir / run_id,
                reference,
                objective,
                beta,
                config.fit,
                config.fractions,
                seed,
                seed_options,
                run_id,
            )  # fmt: skip
        )
    ids = [run.run_id for run in runs]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise InputError(f"the sweep has several runs named {duplicates} (betas that print alike?)")
    return runs
