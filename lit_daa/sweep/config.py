"""What a sweep YAML holds: typed dataclasses that jsonargparse parses (and `lit-daa sweep --help` lists).

A sweep trains one SFT reference per model (per model and seed with `sft_per_seed`), then one DAA run per
(model, objective, beta, seed), and evaluates the intra-epoch checkpoints of every run. Relative paths in the YAML
are taken from the working directory, as every path in a `lit-daa fit` config is.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from lit_daa.errors import InputError
from lit_daa.evaluation.options import EvaluationOptions


@dataclass
class FitSpec:
    """A `lit-daa fit` invocation: config files applied in order, then option overrides.

    Args:
        configs: fit config YAMLs, e.g. [configs/quickstart.yaml]; later ones override earlier ones.
        overrides: dotted option -> value, e.g. {trainer.max_steps: 200, data.batch_size: 16}.
    """

    configs: list[str] = field(default_factory=list)
    overrides: dict[str, Any] = field(default_factory=dict)

    def pairs(self) -> list[tuple[str, Any]]:
        """The overrides as (dotted option, value) in order, for `FitOptions`."""
        return list(self.overrides.items())


@dataclass
class ModelSpec:
    """One model size of the sweep and where its reference (SFT) model comes from.

    Give exactly one of `sft` (train the reference: its exported `hf_policy` becomes both the DAA policy's
    initialisation and the reference) and `reference` (an existing Hugging Face folder, hub id or embedded name).

    Args:
        name: the size's name in run ids and the results table's `model` column (e.g. tiny, 1b).
        sft: the fit that makes the reference, e.g. configs [quickstart.yaml, objectives/sft.yaml] and
            overrides {model.policy: embedded:neox-small}; trained once per model (once per seed with the sweep's
            `sft_per_seed`).
        reference: an existing reference model instead of training one.
        overrides: options for this model's DAA runs only (e.g. a smaller batch for a bigger model).
    """

    name: str
    sft: FitSpec | None = None
    reference: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.sft is None) == (self.reference is None):
            raise InputError(f"sweep model '{self.name}' needs exactly one of sft and reference")


@dataclass
class LogGrid:
    """num log-spaced values from start to stop (both included), rounded to 3 significant digits.

    Rounding keeps run ids readable (beta0.0316 rather than beta0.03162277660168379).
    """

    start: float
    stop: float
    num: int

    def values(self) -> list[float]:
        if self.start <= 0 or self.stop <= 0 or self.num < 1:
            raise InputError(f"a log grid needs start, stop > 0 and num >= 1, got {self}")
        if self.num == 1:
            return [float(f"{self.start:.3g}")]
        ratio = math.log(self.stop / self.start) / (self.num - 1)
        return [float(f"{self.start * math.exp(i * ratio):.3g}") for i in range(self.num)]


@dataclass
class ObjectiveSpec:
    """One objective of the grid with its own betas (the paper's grids differ per objective).

    Args:
        objective: class path or short name as for `--model.objective` (lit_daa.objectives.DPO, IPO, ...).
        betas: a list of betas, or a `LogGrid` {start, stop, num}.
        options: the objective's other constructor arguments (e.g. IPO {form: azar}); beta comes from `betas`.
        name: the name in run ids and the results table's `objective` column; default: the class name.
        overrides: fit options these runs add, e.g. a moving reference for TR-DPO:
            {"trainer.callbacks+": {class_path: lit_daa.moving_reference.MovingReference, init_args: {tau: 8}}}.
        variant: the experiment these runs belong to (the results table's `variant` column): empty for the main
            grid; a control or an ablation names its own (e.g. `coverage` with overrides
            {data.source.init_args.data_max_length: 14}), and the analysis compares it with the main grid's runs
            of the same objective and size.
        models: train these runs for these sizes only (names from `models`); None: every size.
        seeds: the seeds of these runs; None: the sweep's `seeds`.
    """

    objective: str
    betas: list[float] | LogGrid
    options: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    # values stay plain data (a class_path mapping is passed on to `lit-daa fit`, not instantiated here)
    overrides: dict[str, dict | list | str | bool | int | float | None] = field(default_factory=dict)
    variant: str = ""
    models: list[str] | None = None
    seeds: list[int] | None = None

    def __post_init__(self) -> None:
        self.class_path  # noqa: B018 - fail on an unknown objective when the config is read, not mid-sweep
        self.beta_values()

    @property
    def label(self) -> str:
        return self.name or self.objective.rsplit(".", 1)[-1]

    @property
    def class_path(self) -> str:
        """The full class path: a short name is looked up in lit_daa.objectives."""
        if "." in self.objective:
            return self.objective
        if not hasattr(importlib.import_module("lit_daa.objectives"), self.objective):
            raise InputError(f"sweep objective '{self.objective}' is not in lit_daa.objectives; give a class path")
        return f"lit_daa.objectives.{self.objective}"

    def beta_values(self) -> list[float]:
        values = self.betas.values() if isinstance(self.betas, LogGrid) else [float(b) for b in self.betas]
        if not values or any(b <= 0 for b in values):
            raise InputError(f"sweep objective {self.label}: betas must be a non-empty list of values > 0")
        return values


# A sweep's `evaluation:` block is the same dataclass `lit-daa evaluate` reads (one place for every default).
EvaluationSpec = EvaluationOptions


@dataclass
class SlurmSpec:
    """What `--slurm PATH` writes into the array script.

    Args:
        directives: extra `#SBATCH` options, e.g. [--gres=gpu:1, --time=04:00:00, --partition=gpu].
        setup: shell lines run before each task, e.g. [source .venv/bin/activate].
        command: how a task calls lit-daa; `srun` lets Lightning read the SLURM environment (multi-GPU runs).
    """

    directives: list[str] = field(default_factory=list)
    setup: list[str] = field(default_factory=list)
    command: str = "srun lit-daa"


@dataclass
class SweepConfig:
    """A KL-budget sweep: (model x objective x beta) DAA runs from SFT references, evaluated within the epoch.

    Args:
        out_dir: where runs, evaluations and the results table go.
        fit: the fit every DAA run starts from (configs + overrides); the sweep sets the run folder, the policy
            (the model's reference), the objective and the intra-epoch checkpoints on top.
        models: the model sizes.
        objectives: the objectives, each with its betas.
        fractions: fractions of the epoch at which DAA runs save checkpoints (four inside it and its end).
        evaluation: how checkpoints are evaluated.
        isolation: `inprocess` trains in this process (fast start); `subprocess` starts a fresh Python per run
            (a crash or leaked memory cannot take the sweep down).
        keep_going: go on with the other runs after one fails (the sweep still exits non-zero).
        slurm_job: #SBATCH lines, set-up and launcher of the script `--slurm PATH` writes.
        seeds: training seeds; each (model, objective, beta) is trained once per seed, with the seed given to every
            option in `seed_options`. None: one run each, with the seeds the fit configs set.
        seed_options: the fit options a seed sets: the global seed (training order, initialisation) and the
            preference data's draw.
        sft_per_seed: train each model's reference once per seed (run `{model}-sft-s{seed}`, its fit given the seed
            in `seed_options` too), so a seed redraws the SFT model as well as the preference set and the order; the
            DAA runs of seed s start from the reference of seed s. Needs `seeds`. A given `reference` stays shared.
        workers: DAA runs trained at once, each in its own process (references first, in this one); on CPUs give
            each its own core (OMP_NUM_THREADS=1 is set for them).
    """

    out_dir: str
    fit: FitSpec
    models: list[ModelSpec]
    objectives: list[ObjectiveSpec]
    fractions: list[float] = field(default_factory=lambda: [0.2, 0.4, 0.6, 0.8, 1.0])
    evaluation: EvaluationSpec = field(default_factory=EvaluationSpec)
    isolation: Literal["inprocess", "subprocess"] = "inprocess"
    keep_going: bool = True
    slurm_job: SlurmSpec = field(default_factory=SlurmSpec)
    seeds: list[int] | None = None
    seed_options: list[str] = field(default_factory=lambda: ["seed_everything", "data.source.init_args.seed"])
    workers: int = 1
    sft_per_seed: bool = False

    def __post_init__(self) -> None:
        names = [m.name for m in self.models]
        labels = [f"{o.label}-{o.variant}" if o.variant else o.label for o in self.objectives]
        if self.seeds is not None and (not self.seeds or len(set(self.seeds)) != len(self.seeds)):
            raise InputError(f"sweep seeds must be a non-empty list of different seeds, got {self.seeds}")
        if self.sft_per_seed and self.seeds is None:
            raise InputError("sweep sft_per_seed trains a reference per seed; give the sweep's `seeds` too")
        if self.workers < 1:
            raise InputError(f"sweep workers must be at least 1, got {self.workers}")
        for objective in self.objectives:
            unknown = sorted(set(objective.models or []) - set(names))
            if unknown:
                raise InputError(f"sweep objective {objective.label}: models {unknown} are not among {names}")
            if objective.seeds is not None and self.seeds is None:
                raise InputError(f"sweep objective {objective.label} sets seeds; give the sweep's `seeds` too")
        for kind, values in (("model names", names), ("objective names", labels)):
            if len(set(values)) != len(values):
                raise InputError(f"sweep {kind} must be unique, got {values} (set `name` to tell them apart)")
        if not names or not labels:
            raise InputError("a sweep needs at least one model and one objective")
