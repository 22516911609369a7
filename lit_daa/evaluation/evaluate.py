"""One checkpoint's evaluation, as in the paper's section 3: samples, sampled KL both ways, judged win rate, length.

- policy samples (temperature 1, one per prompt): KL(pi || pi_ref) from their log-ratios;
- reference samples: KL(pi_ref || pi) (the paper's Eq. 7 check);
- the judge, policy sample vs human reference: win rate;
- each policy sample's implicit reward beta * log pi/pi_ref regressed on its length: length R^2;
- given the training answers' tokens, the policy's probability mass on tokens outside them while it answers
  (`ood_mass`) and the share of its sampled tokens outside them (`ood_token_share`), from the logits the policy's
  scoring pass computes anyway.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection
from dataclasses import asdict, dataclass
from pathlib import Path

from torch import nn
from transformers import PreTrainedTokenizerBase

from lit_daa.errors import InputError
from lit_daa.evaluation.judges.base import Judge
from lit_daa.evaluation.kl import KLEstimate, score_samples, sequence_logratios
from lit_daa.evaluation.length import length_r2
from lit_daa.evaluation.ood import training_answer_tokens
from lit_daa.evaluation.options import EvaluationOptions
from lit_daa.evaluation.sampling import sample
from lit_daa.evaluation.win_rate import WinRate
from lit_daa.results_schema import COLUMNS


@dataclass(frozen=True)
class SampleRecord:
    """One evaluated policy sample (a line of samples.jsonl); `logratio` is log pi(y|x) - log pi_ref(y|x), `cut`
    says it hit max_new_tokens without EOS."""

    prompt: str
    response: str
    reference: str
    verdict: str
    logratio: float
    length: int
    cut: bool = False


@dataclass
class EvalResult:
    """Everything measured on one checkpoint; `row()` gives the results-table columns (docs/results_schema.md)."""

    kl: KLEstimate
    forward_kl: KLEstimate | None
    win_rate: WinRate
    mean_length: float
    length_r2: float
    records: list[SampleRecord]
    temperature: float = 1.0
    cut_share: float = math.nan
    components: dict[str, float] | None = None
    ood_mass: float = math.nan
    ood_token_share: float = math.nan

    def row(self) -> dict[str, float | int]:
        """The results-table columns this evaluation knows, by their schema names (judge components the schema
        does not name are left out; schema columns the judge has no value for are NaN)."""
        forward = self.forward_kl
        components = {k: v for k, v in (self.components or {}).items() if k in COLUMNS}
        gold = {k: math.nan for k in COLUMNS if k.startswith("gold_")}
        return {
            "kl": self.kl.mean,
            "kl_stderr": self.kl.stderr,
            "sqrt_kl": self.kl.sqrt_kl,
            "forward_kl": forward.mean if forward else math.nan,
            "forward_kl_stderr": forward.stderr if forward else math.nan,
            "win_rate": self.win_rate.rate,
            "win_rate_stderr": self.win_rate.stderr,
            "ties": self.win_rate.ties,
            "invalid": self.win_rate.invalid,
            "temperature": self.temperature,
            "cut_share": self.cut_share,
            "mean_length": self.mean_length,
            "length_r2": self.length_r2,
            "ood_mass": self.ood_mass,
            "ood_token_share": self.ood_token_share,
            **gold,
            **components,
        }

    def save_samples(self, path: str | Path) -> Path:
        """Write one JSON object per policy sample (`SampleRecord` fields) to `path`; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as f:
            for record in self.records:
                f.write(json.dumps(asdict(record), ensure_ascii=False) + "\n")
        return path

    def save_metrics(self, path: str | Path) -> Path:
        """Write `row()` as a JSON object to `path` (NaN written as null, which strict JSON readers accept)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        row = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in self.row().items()}
        path.write_text(json.dumps(row, indent=2) + "\n", encoding="utf-8")
        return path


def evaluate_policy(
    policy: nn.Module,
    reference: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    references: list[str],
    options: EvaluationOptions | None = None,
    beta: float | None = None,
    in_data_tokens: Collection[int] | None = None,
) -> EvalResult:
    """Evaluate `policy` against `reference` on the first `options.num_prompts` prompts (all of them if fewer).

    Args:
        policy: the trained causal LM (pi).
        reference: the SFT model it started from (pi_ref); may be the same object (KL exactly 0).
        tokenizer: the tokenizer both share.
        prompts: evaluation prompts.
        references: one human reference response per prompt, which the judge compares the samples with.
        options: judge, sampling and batch options (`EvaluationOptions`; its prompt-source fields are not read
            here). Policy samples use `options.seed`, reference samples `options.seed + 1`.
        beta: the objective's beta, scaling the implicit reward in length_r2 (None: 1; R^2 does not depend on it).
        in_data_tokens: the in-data token ids of `ood_mass` / `ood_token_share` (e.g. a run's own training
            answers, `lit_daa.evaluation.ood.answer_tokens`); None: those of `options.training_data`, and without
            it both columns are NaN.
    """
    options = options or EvaluationOptions()
    if len(prompts) != len(references):
        raise InputError(f"evaluation needs one reference per prompt, got {len(prompts)} prompts, {len(references)}")
    prompts, references = list(prompts[: options.num_prompts]), list(references[: options.num_prompts])
    if not prompts:
        raise InputError("evaluation needs at least one prompt")
    sampling = {
        "max_new_tokens": options.max_new_tokens,
        "temperature": options.temperature,
        "batch_size": options.batch_size,
        "max_prompt_length": options.max_prompt_length,
    }
    batch_size = options.batch_size
    samples = sample(policy, tokenizer, prompts, seed=options.seed, **sampling)
    if in_data_tokens is None and options.training_data is not None:
        in_data_tokens = training_answer_tokens(options.training_data, tokenizer)
    # one policy forward gives both the log-ratios and the out-of-data mass (same logits, one more log-sum-exp)
    scores = score_samples(policy, reference, samples, batch_size, in_data_tokens)
    logratios = scores.logratios
    backward = None
    if options.forward_kl:
        ref_samples = sample(reference, tokenizer, prompts, seed=options.seed + 1, **sampling)
        backward = KLEstimate.from_logratios(sequence_logratios(reference, policy, ref_samples, batch_size))
    judge: Judge = options.judge
    verdicts = judge.judge(prompts, samples.responses, references)
    components = {
        name: sum(values) / len(values) for name, values in judge.components(prompts, samples.responses).items()
    }
    rewards = (logratios.double() * (1.0 if beta is None else beta)).tolist()
    lengths, cut = samples.lengths, samples.cut
    tokens = int(scores.tokens.sum())
    ood_mass = ood_share = math.nan
    if scores.ood_mass is not None and scores.ood_tokens is not None and tokens:
        # pooled over all sampled tokens (not a mean of per-sample means), as mean_length counts them
        ood_mass = float(scores.ood_mass.double().sum()) / tokens
        ood_share = int(scores.ood_tokens.sum()) / tokens
    records = [
        SampleRecord(p, r, ref, v.value, lr, n, c)
        for p, r, ref, v, lr, n, c in zip(
            prompts, samples.responses, references, verdicts, logratios.tolist(), lengths, cut, strict=True
        )
    ]
    return EvalResult(
        kl=KLEstimate.from_logratios(logratios),
        forward_kl=backward,
        win_rate=WinRate.from_verdicts(verdicts),
        mean_length=sum(lengths) / len(lengths),
        length_r2=length_r2(rewards, lengths),
        records=records,
        temperature=options.temperature,
        cut_share=sum(cut) / len(cut),
        components=components,
        ood_mass=ood_mass,
        ood_token_share=ood_share,
    )
