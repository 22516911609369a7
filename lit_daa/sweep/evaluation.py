"""Result rows of a sweep: each target (a checkpoint, or a reference against itself) sampled, judged and scored on
held-out pairs, each row saved once.

A checkpoint's row joins what its run knows (run id, objective, variant, seed, position in training),
`evaluate_policy` (KL both ways, win rate, length, the judge's reward terms, the cut share) and the held-out
metrics of `HeldOutPairs`. A reference's row is the d = 0 point: the reference evaluated against itself (KL 0),
objective `SFT`; its held-out accuracy, loss and margin are NaN (they depend on an objective and a beta), its
chosen_logratio is 0 (log pi/pi_ref with pi = pi_ref), and on the synthetic world it also records the win rate of
a second human answer per prompt: what an exact imitator of the human answers would score.
"""

from __future__ import annotations

import gc
import math
import random
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lit_daa.evaluation import EvalResult, evaluate_policy
from lit_daa.evaluation.cli import load_rows
from lit_daa.evaluation.options import SYNTHETIC, EvaluationOptions
from lit_daa.evaluation.win_rate import WinRate
from lit_daa.models import load_causal_lm, load_tokenizer
from lit_daa.sweep.heldout import HeldOutPairs
from lit_daa.sweep.table import read_rows, write_json
from lit_daa.sweep.targets import EvalTarget


class SweepEvaluator:
    """Evaluates targets as `spec` says, keeping the current reference model loaded.

    Attributes:
        evaluated: the models (checkpoint folders or reference names) evaluated by this object, in order; rows
            found on disk are reused and not listed.
    """

    def __init__(self, spec: EvaluationOptions) -> None:
        self.spec = spec
        self.evaluated: list[str] = []
        self._reference: tuple[str, nn.Module] | None = None
        self._heldout: tuple[Path, HeldOutPairs] | None = None

    @cached_property
    def prompts(self) -> tuple[list[str], list[str]]:
        """The evaluation prompts and their reference responses (read or drawn once per sweep)."""
        rows = load_rows(self.spec)  # the same source rules as `lit-daa evaluate --prompts`
        return [r["prompt"] for r in rows], [r["reference"] for r in rows]

    @cached_property
    def imitation_win_rate(self) -> float:
        """Win rate of a second, independent human answer per synthetic prompt against the first (NaN for a file)."""
        if self.spec.prompts != SYNTHETIC or not hasattr(self.spec.world, "human_response"):
            return math.nan
        prompts, references = self.prompts
        prompts, references = prompts[: self.spec.num_prompts], references[: self.spec.num_prompts]
        rng = random.Random(self.spec.prompts_seed + 1)
        second = [self.spec.world.human_response(p, rng) for p in prompts]
        return WinRate.from_verdicts(self.spec.judge.judge(prompts, second, references)).rate

    @cached_property
    def device(self) -> torch.device:
        return torch.device(self.spec.device or ("cuda" if torch.cuda.is_available() else "cpu"))

    def load(self, name: str) -> nn.Module:
        return load_causal_lm(name, dtype=self.spec.dtype, option="sweep model").to(self.device).eval()

    def reference_model(self, name: str) -> nn.Module:
        """The reference `name`, loaded once and kept while consecutive targets share it."""
        if self._reference is None or self._reference[0] != name:
            self._reference = None
            gc.collect()
            self._reference = (name, self.load(name))
        return self._reference[1]

    def heldout(self, fit_config: Path) -> HeldOutPairs:
        """The held-out pairs of a run, from its fit.yaml (built once for all its checkpoints)."""
        if self._heldout is None or self._heldout[0] != fit_config:
            self._heldout = (fit_config, HeldOutPairs(fit_config))
        return self._heldout[1]

    def rows(self, targets: list[EvalTarget]) -> list[dict[str, Any]]:
        """One row per target, in order; rows already on disk are read back."""
        return [self.row(target) for target in targets]

    def row(self, target: EvalTarget) -> dict[str, Any]:
        if target.cache.is_file():
            return read_rows(target.cache)[0]
        reference = self.reference_model(target.reference_path)
        policy = reference if target.is_reference else self.load(target.model_path)
        prompts, references = self.prompts
        tokenizer = load_tokenizer(target.model_path, option="sweep model")
        result = evaluate_policy(policy, reference, tokenizer, prompts, references, self.spec, target.beta_or_none)
        row = {**target.row, "params": _params(policy), **result.row()}
        if target.heldout_config is None:
            row.update(
                val_accuracy=math.nan,
                val_loss=math.nan,
                val_margin=math.nan,
                chosen_logratio=0.0,
                imitation_win_rate=self.imitation_win_rate,
            )
        else:
            row.update(self.heldout(target.heldout_config).metrics(policy, reference))
        self._save(result, row, target)
        self.evaluated.append(target.model_path)
        return row

    def _save(self, result: EvalResult, row: dict[str, Any], target: EvalTarget) -> None:
        if self.spec.save_samples:
            result.save_samples(target.cache.with_suffix(".samples.jsonl"))
        write_json(target.cache, row)  # last: its presence means the checkpoint is done


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
