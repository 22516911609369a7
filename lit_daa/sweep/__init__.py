"""KL-budget sweeps: (model x objective x beta) DAA runs from SFT references, evaluated within the epoch.

`lit-daa sweep --config configs/sweeps/demo.yaml`; see `lit_daa.sweep.cli` for the commands, `config` for the
YAML, `runs` for the folders, `fit_config` for each run's resolved `<run>/fit.yaml` and `table` for the results table
(docs/results_schema.md).
"""

from lit_daa.sweep.config import (
    EvaluationSpec,
    FitSpec,
    LogGrid,
    ModelSpec,
    ObjectiveSpec,
    SlurmSpec,
    SweepConfig,
)
from lit_daa.sweep.driver import Sweep
from lit_daa.sweep.fit_config import FIT_CONFIG, FitOptions, read_fit_config, resolve_fit_config
from lit_daa.sweep.runners import RUNNERS, FitRunner, InProcessRunner, SubprocessRunner
from lit_daa.sweep.runs import DAARun, GivenReference, ReferenceRun, Run, TrainedReference, expand
from lit_daa.sweep.table import COLUMNS

__all__ = [
    "COLUMNS",
    "DAARun",
    "EvaluationSpec",
    "FIT_CONFIG",
    "FitOptions",
    "FitRunner",
    "FitSpec",
    "GivenReference",
    "InProcessRunner",
    "LogGrid",
    "ModelSpec",
    "ObjectiveSpec",
    "RUNNERS",
    "ReferenceRun",
    "Run",
    "SlurmSpec",
    "SubprocessRunner",
    "Sweep",
    "SweepConfig",
    "TrainedReference",
    "expand",
    "read_fit_config",
    "resolve_fit_config",
]
