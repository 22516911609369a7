"""Result rows of a sweep: each checkpoint sampled, judged and scored on held-out pairs, each row saved once.

A DAA checkpoint's row joins where it is in training (checkpoint.json), `evaluate_policy` (KL both ways, win
rate, length) and the held-out metrics of `HeldOutPairs`. A reference's row is the d = 0 point: the reference
evaluated against itself (KL 0), step 0, objective `SFT`; its val_accuracy and val_loss are NaN (they depend on
an objective and a beta) and its chosen_logratio is 0 (log pi/pi_ref with pi = pi_ref).
"""

from __future__ import annotations

import gc
import math
import warnings
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lit_daa.checkpoints import CheckpointInfo, list_checkpoints
from lit_daa.evaluation import EvalResult, evaluate_policy
from lit_daa.evaluation.cli import load_rows
from lit_daa.models import load_causal_lm, load_tokenizer
from lit_daa.sweep.config import EvaluationSpec
from lit_daa.sweep.heldout import HeldOutPairs
from lit_daa.sweep.runs import DAARun, ReferenceRun
from lit_daa.sweep.table import read_rows, write_json


class SweepEvaluator:
    """Evaluates references and checkpoints as `spec` says, keeping the current reference model loaded.

    Attributes:
        evaluated: the checkpoints (folders or reference names) evaluated by this object, in order; rows found on
            disk are reused and not listed.
    """

    def __init__(self, spec: EvaluationSpec) -> None:
        self.spec = spec
        self.evaluated: list[str] = []
        self._reference: tuple[str, nn.Module] | None = None

    @cached_property
    def prompts(self) -> tuple[list[str], list[str]]:
        """The evaluation prompts and their reference responses (read or drawn once per sweep)."""
        rows = load_rows(self.spec)  # the same source rules as `lit-daa evaluate --prompts`
        return [r["prompt"] for r in rows], [r["reference"] for r in rows]

    @cached_property
    def device(self) -> torch.device:
        return torch.device(self.spec.device or ("cuda" if torch.cuda.is_available() else "cpu"))

    def load(self, name: str) -> nn.Module:
        return load_causal_lm(name, dtype=self.spec.dtype, option="sweep model").to(self.device).eval()

    def reference_model(self, name: str) -> nn.Module:
        """The reference `name`, loaded once and kept while consecutive runs share it."""
        if self._reference is None or self._reference[0] != name:
            self._reference = None
            gc.collect()
            self._reference = (name, self.load(name))
        return self._reference[1]

    def run_evaluation(self, policy: nn.Module, reference: nn.Module, tokenizer_from: str, beta: float) -> EvalResult:
        prompts, references = self.prompts
        spec = self.spec
        return evaluate_policy(
            policy,
            reference,
            load_tokenizer(tokenizer_from, option="sweep model"),
            prompts,
            references,
            spec.judge,
            beta=None if math.isnan(beta) else beta,
            max_new_tokens=spec.max_new_tokens,
            batch_size=spec.batch_size,
            seed=spec.seed,
            num_prompts=spec.num_prompts,
            temperature=spec.temperature,
            forward_kl=spec.forward_kl,
            max_prompt_length=spec.max_prompt_length,
        )

    def reference_row(self, run: ReferenceRun) -> dict[str, Any]:
        """The d = 0 row of a reference (see the module docstring)."""
        cached = run.root / "evals" / "reference.json"
        if cached.is_file():
            return read_rows(cached)[0]
        reference = self.reference_model(run.model_path)
        result = self.run_evaluation(reference, reference, run.model_path, math.nan)
        row = {
            **run.row_base(),
            "params": _params(reference),
            "step": 0,
            "examples_seen": 0,
            "epoch_fraction": 0.0,
            "is_final": False,
            **result.row(),
            "val_accuracy": math.nan,
            "val_loss": math.nan,
            "chosen_logratio": 0.0,
        }
        self._save(result, row, cached)
        self.evaluated.append(run.model_path)
        return row

    def checkpoint_rows(self, run: DAARun) -> list[dict[str, Any]]:
        """One row per intra-epoch checkpoint of `run`, by step; rows already on disk are read back."""
        rows: list[dict[str, Any]] = []
        heldout: HeldOutPairs | None = None  # built on the first checkpoint that needs it
        checkpoints = list_checkpoints(run.checkpoints_dir)
        if not checkpoints:
            warnings.warn(
                f"{run.run_id} has no intra-epoch checkpoints in {run.checkpoints_dir} (did trainer.max_steps stop "
                "it before the first fraction of the epoch?); it adds no rows",
                stacklevel=2,
            )
        for folder, info in checkpoints:
            cached = run.root / "evals" / f"{folder.name}.json"
            if cached.is_file():
                rows.append(read_rows(cached)[0])
                continue
            heldout = heldout or HeldOutPairs(run.fit_args())
            rows.append(self._checkpoint_row(run, folder, info, heldout, cached))
        return rows

    def _checkpoint_row(
        self, run: DAARun, folder: Path, info: CheckpointInfo, heldout: HeldOutPairs, cached: Path
    ) -> dict[str, Any]:
        reference = self.reference_model(run.reference.model_path)
        policy = self.load(str(folder))
        result = self.run_evaluation(policy, reference, str(folder), run.beta)
        row = {
            **run.row_base(),
            "params": _params(policy),
            "step": info.step,
            "examples_seen": info.examples_seen,
            "epoch_fraction": info.epoch_fraction,
            "is_final": info.is_final,
            **result.row(),
            **heldout.metrics(policy, reference),
        }
        self._save(result, row, cached)
        self.evaluated.append(str(folder))
        return row

    def _save(self, result: EvalResult, row: dict[str, Any], path: Path) -> None:
        if self.spec.save_samples:
            result.save_samples(path.with_suffix(".samples.jsonl"))
        write_json(path, row)  # last: its presence means the checkpoint is done


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
