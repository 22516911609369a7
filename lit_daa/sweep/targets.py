"""What the sweep's evaluator is given: one model to evaluate, its reference, and where its row goes.

Runs (`sweep.runs`) list their targets and the evaluator (`sweep.evaluation`) turns targets into rows; neither
imports the other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class EvalTarget:
    """One checkpoint (or a reference against itself) to evaluate.

    Attributes:
        model_path: the policy to sample: a folder, hub id or embedded name.
        reference_path: its reference (equal to `model_path` for a reference row: KL 0 by construction).
        beta: the run's beta (NaN for a reference row), scaling the implicit reward of length R^2.
        cache: the JSON file holding the finished row; when it exists the row is read back, not recomputed.
        row: the row's columns known before evaluating (run id, objective, variant, seed, position in training).
        heldout_config: the run's resolved `lit-daa fit` config (its fit.yaml), whose validation pairs and objective
            give the held-out metrics; None for a reference row, whose held-out metrics are fixed (see
            `sweep.evaluation`).
    """

    model_path: str
    reference_path: str
    beta: float
    cache: Path
    row: dict[str, Any] = field(default_factory=dict)
    heldout_config: Path | None = None

    @property
    def is_reference(self) -> bool:
        return self.heldout_config is None

    @property
    def beta_or_none(self) -> float | None:
        return None if math.isnan(self.beta) else self.beta
