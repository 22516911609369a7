"""`lit-daa best-of-n`: best-of-n sampling from the SFT policy, selected by a proxy reward model or the gold judge.

    lit-daa best-of-n --policy runs/lab/sft-tiny/hf_policy --reward_model runs/lab/rm-tiny/hf_reward_model \\
        --n 16 --num_prompts 256 --out runs/lab/bon-tiny.csv --model_name tiny

For every prompt, N answers are sampled once (`lit_daa.evaluation.sampling`, temperature `--temperature`), scored
once by the proxy reward model (optional) and once by the judge (`--judge`, by default the synthetic world's gold
reward), each against the prompt's reference answer. The exact expected outcome of best-of-n for every n = 1..N is
then computed from that one pool (`lit_daa.evaluation.best_of_n`), for each selector:

- `proxy`: keep the answer the reward model scores highest (the classic RLHF over-optimisation curve);
- `gold`: keep the answer the judge scores highest (the ceiling).

The CSV has one row per (selector, n) with columns selector, n, kl, sqrt_kl (KL = log n - (n - 1)/n), win_rate
(win 1, tie 1/2, loss 0 against the reference, expected over n-subsets, averaged over prompts), win_rate_stderr
(across prompts), gold_reward (the judge's `gold_reward` component, else its score) and gold_reward_stderr, plus
model, seed, pool (N) and prompts. A Gain fit of Gao et al.'s best-of-n form R(d) = R(0) + d (alpha - beta d) to
each selector's win rates is printed.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from jsonargparse import ActionConfigFile, ArgumentParser
from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from lit_daa.errors import InputError
from lit_daa.evaluation.best_of_n import best_of_n_kl, best_of_n_per_prompt
from lit_daa.evaluation.cli import load_rows, options_of
from lit_daa.evaluation.judges.base import ScoringJudge, Verdict, compare_scores
from lit_daa.evaluation.judges.reward_model import RewardModelJudge
from lit_daa.evaluation.options import EvaluationOptions
from lit_daa.evaluation.sampling import Samples, sample
from lit_daa.models import load_causal_lm, load_tokenizer, resolve_model
from lit_daa.reward_model import score_sequences

CSV_COLUMNS = (
    "selector",
    "n",
    "kl",
    "sqrt_kl",
    "win_rate",
    "win_rate_stderr",
    "gold_reward",
    "gold_reward_stderr",
    "model",
    "seed",
    "pool",
    "prompts",
)
OUTCOME = {Verdict.WIN: 1.0, Verdict.TIE: 0.5, Verdict.LOSS: 0.0, Verdict.INVALID: math.nan}


@dataclass
class BestOfNPool:
    """N sampled answers per prompt and what each selector and the judge make of them; arrays are (P, N).

    Attributes:
        prompts: the P prompts.
        responses: P lists of N decoded answers.
        proxy: proxy reward-model scores, or None without a reward model.
        gold: the judge's scores of the answers (the gold selector's scores).
        outcomes: 1 win, 0.5 tie, 0 loss (NaN invalid) of each answer against the prompt's reference.
        gold_reward: the judge's `gold_reward` component of each answer (its score when it has none).
    """

    prompts: list[str]
    responses: list[list[str]]
    proxy: np.ndarray | None
    gold: np.ndarray
    outcomes: np.ndarray
    gold_reward: np.ndarray

    @property
    def size(self) -> int:
        return self.gold.shape[1]

    def selectors(self) -> dict[str, np.ndarray]:
        """(P, N) selection scores by selector name: proxy (when scored), then gold."""
        return {**({"proxy": self.proxy} if self.proxy is not None else {}), "gold": self.gold}

    def rows(self, model: str, seed: int) -> list[dict[str, float | int | str]]:
        """One CSV row (`CSV_COLUMNS`) per (selector, n)."""
        ns = np.arange(1, self.size + 1)
        kl = best_of_n_kl(ns)
        out = []
        for name, scores in self.selectors().items():
            win = best_of_n_per_prompt(scores, self.outcomes)
            gold = best_of_n_per_prompt(scores, self.gold_reward)
            for k, n in enumerate(ns):
                out.append(
                    {
                        "selector": name,
                        "n": int(n),
                        "kl": float(kl[k]),
                        "sqrt_kl": math.sqrt(kl[k]),
                        "win_rate": float(win[:, k].mean()),
                        "win_rate_stderr": _stderr(win[:, k]),
                        "gold_reward": float(gold[:, k].mean()),
                        "gold_reward_stderr": _stderr(gold[:, k]),
                        "model": model,
                        "seed": seed,
                        "pool": self.size,
                        "prompts": len(self.prompts),
                    }
                )
        return out


def _stderr(values: np.ndarray) -> float:
    """Standard error of the mean across prompts: sample std (ddof 1) / sqrt(P); NaN below 2 prompts."""
    return float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan


def sample_pool(
    policy: nn.Module, tokenizer: PreTrainedTokenizerBase, prompts: list[str], n: int, options: EvaluationOptions
) -> Samples:
    """n answers per prompt, prompt-major (answer j of prompt i at i * n + j), with a progress bar.

    Each prompt is repeated n times and the repeats are sampled `options.batch_size` rows per `generate` call
    (`lit_daa.evaluation.sampling.sample`); chunk k is drawn with seed `options.seed + k`, so the draw is
    reproducible for a given (seed, batch_size) and no two chunks share a random stream.
    """
    rows = [p for p in prompts for _ in range(n)]
    size = options.batch_size
    parts: list[Samples] = []
    with tqdm(total=len(rows), desc="best-of-n: sampling", unit="answer", mininterval=2.0) as bar:
        for k, start in enumerate(range(0, len(rows), size)):
            chunk = rows[start : start + size]
            parts.append(
                sample(
                    policy,
                    tokenizer,
                    chunk,
                    max_new_tokens=options.max_new_tokens,
                    temperature=options.temperature,
                    batch_size=size,
                    seed=options.seed + k,
                    max_prompt_length=options.max_prompt_length,
                )
            )
            bar.update(len(chunk))
    return Samples(
        [p for s in parts for p in s.prompts],
        [ids for s in parts for ids in s.prompt_ids],
        [ids for s in parts for ids in s.response_ids],
        [r for s in parts for r in s.responses],
        tokenizer.eos_token_id,
    )


def proxy_scores(judge: RewardModelJudge, tokenizer: PreTrainedTokenizerBase, samples: Samples) -> np.ndarray:
    """(P * n,) proxy rewards of the samples.

    With the policy's own vocabulary the reward model scores the sampled token ids (prompt + answer, EOS
    dropped), exactly as it was trained (`lit_daa.reward_model`): decoding and re-tokenizing can change the ids
    (a word tokenizer decodes without the leading space). With another vocabulary it scores the texts.
    """
    if judge.tokenizer.get_vocab() != tokenizer.get_vocab():
        return np.asarray(judge.score(samples.prompts, samples.responses), dtype=np.float64)
    eos = samples.eos_token_id
    ids = [
        (p + (r[:-1] if r and r[-1] == eos else r))[-judge.max_length :]
        for p, r in zip(samples.prompt_ids, samples.response_ids, strict=True)
    ]
    return score_sequences(judge.model, ids, judge.tokenizer.pad_token_id, judge.batch_size).double().numpy()


def best_of_n_pool(
    policy: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    references: list[str],
    n: int,
    options: EvaluationOptions,
    reward_model: RewardModelJudge | None = None,
) -> BestOfNPool:
    """Sample n answers for each of the first `options.num_prompts` prompts and score them (see the module doc).

    Args:
        policy: the causal LM sampled from (the SFT model).
        tokenizer: its tokenizer.
        prompts: evaluation prompts; references: one reference answer per prompt.
        n: answers per prompt (the pool size N).
        options: sampling options and the judge (`options.judge` must score each answer: a `ScoringJudge`).
        reward_model: the proxy reward model; None: only the gold selector.
    """
    if n < 1:
        raise InputError(f"--n must be at least 1, got {n}")
    if len(prompts) != len(references):
        raise InputError(f"best-of-n needs one reference per prompt, got {len(prompts)} and {len(references)}")
    prompts, references = list(prompts[: options.num_prompts]), list(references[: options.num_prompts])
    if not prompts:
        raise InputError("best-of-n needs at least one prompt")
    judge = options.judge
    if not isinstance(judge, ScoringJudge):
        raise InputError(
            f"--judge {type(judge).__name__} does not score single answers; best-of-n needs a scoring judge "
            "(GoldRewardJudge or RewardModelJudge)"
        )
    samples = sample_pool(policy, tokenizer, prompts, n, options)
    shape = (len(prompts), n)
    proxy = None if reward_model is None else proxy_scores(reward_model, tokenizer, samples).reshape(shape)
    # one judge call: every answer, then every reference
    scores = judge.score([*samples.prompts, *prompts], [*samples.responses, *references])
    answers, reference_scores = scores[: len(samples)], scores[len(samples) :]
    outcomes = [OUTCOME[compare_scores(a, reference_scores[i // n])] for i, a in enumerate(answers)]
    gold_reward = judge.components(samples.prompts, samples.responses).get("gold_reward", answers)
    return BestOfNPool(
        prompts=prompts,
        responses=[samples.responses[i * n : (i + 1) * n] for i in range(len(prompts))],
        proxy=proxy,
        gold=np.asarray(answers, dtype=np.float64).reshape(shape),
        outcomes=np.asarray(outcomes, dtype=np.float64).reshape(shape),
        gold_reward=np.asarray(gold_reward, dtype=np.float64).reshape(shape),
    )


def write_csv(rows: list[dict[str, float | int | str]], path: str | Path) -> Path:
    """Write `rows` (`CSV_COLUMNS`) to `path`, creating its folder; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_samples(pool: BestOfNPool, path: Path) -> Path:
    """One JSON object per sampled answer: prompt, response, proxy (or null), gold score, outcome, gold_reward."""
    with path.open("w", encoding="utf-8") as f:
        for p, prompt in enumerate(pool.prompts):
            for j, response in enumerate(pool.responses[p]):
                record = {
                    "prompt": prompt,
                    "response": response,
                    "proxy": None if pool.proxy is None else float(pool.proxy[p, j]),
                    "gold": float(pool.gold[p, j]),
                    "outcome": float(pool.outcomes[p, j]),
                    "gold_reward": float(pool.gold_reward[p, j]),
                }
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def summary(rows: list[dict[str, float | int | str]]) -> str:
    """A short table (n = 1, 2, 4, ..., N per selector) and a Gain fit of the best-of-n form to each selector."""
    from lit_daa.analysis.fits import FitError, Gain, QuadraticForm, fit

    pool = max(int(r["n"]) for r in rows)
    shown = {1 << k for k in range(pool.bit_length())} | {pool}
    lines = [f"{'selector':<9}{'n':>4}{'kl':>8}{'win_rate':>10}{'gold_reward':>13}"]
    lines += [
        f"{r['selector']:<9}{r['n']:>4}{r['kl']:>8.3f}{r['win_rate']:>10.4f}{r['gold_reward']:>13.4f}"
        for r in rows
        if r["n"] in shown
    ]
    for selector in dict.fromkeys(r["selector"] for r in rows):
        mine = [r for r in rows if r["selector"] == selector]
        d = [float(r["sqrt_kl"]) for r in mine]
        win = [float(r["win_rate"]) for r in mine]
        try:
            result = fit(d, win, QuadraticForm(), Gain(), r0=win[0])
        except (FitError, InputError) as err:
            lines.append(f"{selector}: no fit ({err})")
            continue
        lines.append(
            f"{selector}: win_rate = R0 + d (alpha - beta d) with R0 {result.intercept:.4f}, alpha {result.alpha:.4f}, "
            f"beta {result.beta:.4f}; peak {result.peak_value:.4f} at d = {result.d_star:.3f}, rmse {result.rmse:.4f}"
        )
    return "\n".join(lines)


def build_parser() -> ArgumentParser:
    """The `lit-daa best-of-n` parser: the models, N, `EvaluationOptions` at the top level, the output and labels."""
    parser = ArgumentParser(prog="lit-daa best-of-n", description=__doc__.splitlines()[0])
    parser.add_argument("--config", action=ActionConfigFile, help="a YAML file of these options")
    parser.add_argument("--policy", type=str, required=True, help="the model to sample from (the SFT export)")
    parser.add_argument(
        "--reward_model", type=str | None, default=None, help="proxy reward model folder; without it only gold"
    )
    parser.add_argument("--n", type=int, default=16, help="N: answers sampled per prompt (best-of-n for n = 1..N)")
    parser.add_class_arguments(EvaluationOptions, None)
    parser.add_argument("--out", type=str, required=True, help="the CSV file to write")
    parser.add_argument("--model_name", type=str | None, default=None, help="the model column (default: --policy)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run `lit-daa best-of-n`; bad input raises `InputError` (the `lit-daa` entry point prints it, exit code 2)."""
    parser = build_parser()
    args = parser.instantiate_classes(parser.parse_args(argv))
    if args.n < 1:
        raise InputError(f"--n must be at least 1, got {args.n}")
    options = options_of(args)
    device = torch.device(options.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    resolve_model(args.policy, "--policy")
    reward_model = None
    if args.reward_model is not None:
        folder = resolve_model(args.reward_model, "--reward_model")
        reward_model = RewardModelJudge(folder, batch_size=options.batch_size, dtype=options.dtype, device=str(device))
    rows = load_rows(options)
    tokenizer = load_tokenizer(args.policy, option="--policy")
    policy = load_causal_lm(args.policy, dtype=options.dtype, option="--policy").to(device)
    prompts, references = [r["prompt"] for r in rows], [r["reference"] for r in rows]
    pool = best_of_n_pool(policy, tokenizer, prompts, references, args.n, options, reward_model)
    table = pool.rows(args.model_name or args.policy, options.seed)
    out = write_csv(table, args.out)
    print(summary(table))
    print(f"wrote {out}")
    if options.save_samples:
        print(f"wrote {write_samples(pool, out.with_suffix('.samples.jsonl'))}")
    return 0
