"""`lit-daa evaluate`: sample a policy and its reference, estimate the KL both ways, judge the samples.

    lit-daa evaluate --policy runs/quickstart/hf_policy --reference embedded:neox-tiny --out runs/quickstart/eval
    lit-daa evaluate --policy ckpt/ --reference sft/ --prompts tldr_eval.jsonl \\
        --judge OpenAIJudge --judge.cache_path judge_cache.jsonl

`--prompts` is a .jsonl/.csv file with `prompt` and `reference` columns, or `synthetic` for the embedded world's
evaluation set (configured by --world.*, drawn with --prompts_seed). With --out, writes metrics.json (the
results-table columns) and samples.jsonl (prompt, response, reference, verdict, log-ratio, length per sample).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Protocol

import torch
from jsonargparse import ActionConfigFile, ArgumentParser, lazy_instance

from lit_daa.evaluation.eval_set import eval_set, read_eval_file
from lit_daa.evaluation.evaluate import EvalResult, evaluate_policy
from lit_daa.evaluation.judges import GoldRewardJudge, Judge
from lit_daa.models import load_causal_lm, load_tokenizer
from lit_daa.synthetic.world import SyntheticWorld

SYNTHETIC = "synthetic"


def build_parser() -> ArgumentParser:
    """The `lit-daa evaluate` argument parser (every option also settable from a --config YAML)."""
    parser = ArgumentParser(prog="lit-daa evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--config", action=ActionConfigFile, help="a YAML file of these options")
    parser.add_argument("--policy", type=str, required=True, help="policy: HF folder, hub id or embedded name")
    parser.add_argument("--reference", type=str, required=True, help="reference (SFT) model: HF folder, hub id, ...")
    parser.add_argument("--prompts", type=str, default=SYNTHETIC, help=f"a .jsonl/.csv file or '{SYNTHETIC}'")
    parser.add_argument("--world", type=SyntheticWorld, default=SyntheticWorld(), help="the synthetic world")
    parser.add_argument("--prompts_seed", type=int, default=12345, help="seed of the synthetic evaluation set")
    parser.add_argument(
        "--judge",
        type=Judge,
        default=lazy_instance(GoldRewardJudge),
        help="the judge (class_path); GoldRewardJudge's arguments should match the world's gold reward",
    )
    parser.add_argument("--num_prompts", type=int, default=256, help="prompts evaluated (the first ones)")
    parser.add_argument("--max_new_tokens", type=int, default=64, help="most tokens per sampled response")
    parser.add_argument("--max_prompt_length", type=int | None, default=None, help="keep the last N prompt tokens")
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (1.0: unbiased KL)")
    parser.add_argument("--batch_size", type=int, default=32, help="prompts per generate/forward pass")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    parser.add_argument("--beta", type=float | None, default=None, help="the objective's beta (implicit reward)")
    parser.add_argument("--forward_kl", type=bool, default=True, help="also estimate KL(pi_ref || pi)")
    parser.add_argument("--dtype", type=str, default="float32", help="float32, bfloat16 or float16 for both models")
    parser.add_argument("--device", type=str | None, default=None, help="cpu, cuda, cuda:1, ...; None: CUDA if any")
    parser.add_argument("--out", type=str | None, default=None, help="folder for metrics.json and samples.jsonl")
    return parser


class EvalSetOptions(Protocol):
    """What `load_rows` reads: the parsed `lit-daa evaluate` options, or a sweep's evaluation spec."""

    prompts: str
    world: SyntheticWorld
    num_prompts: int
    prompts_seed: int


def load_rows(args: EvalSetOptions) -> list[dict[str, str]]:
    """The evaluation rows {"prompt", "reference"} named by `args.prompts` (a file, or the synthetic world)."""
    if args.prompts == SYNTHETIC:
        return eval_set(args.world, args.num_prompts, args.prompts_seed)
    return read_eval_file(args.prompts)


def format_table(result: EvalResult) -> str:
    """A short two-column table of the metrics."""
    lines = [f"{'metric':<18} value"]
    for name, value in result.row().items():
        shown = "nan" if isinstance(value, float) and math.isnan(value) else f"{value:.4g}"
        lines.append(f"{name:<18} {shown}")
    lines.append(f"{'judged':<18} {result.win_rate.judged}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run `lit-daa evaluate`; bad input raises `InputError` (the `lit-daa` entry point prints it, exit code 2)."""
    parser = build_parser()
    args = parser.instantiate_classes(parser.parse_args(argv))
    rows = load_rows(args)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    tokenizer = load_tokenizer(args.policy, option="--policy")
    policy = load_causal_lm(args.policy, dtype=args.dtype, option="--policy").to(device)
    # the same folder twice still gives two models; sequence_logratios then scores both (and gets exactly 0)
    reference = load_causal_lm(args.reference, dtype=args.dtype, option="--reference").to(device)
    result = evaluate_policy(
        policy,
        reference,
        tokenizer,
        [r["prompt"] for r in rows],
        [r["reference"] for r in rows],
        args.judge,
        beta=args.beta,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        seed=args.seed,
        num_prompts=args.num_prompts,
        temperature=args.temperature,
        forward_kl=args.forward_kl,
        max_prompt_length=args.max_prompt_length,
    )
    print(format_table(result))
    if args.out is not None:
        out = Path(args.out)
        metrics, samples = result.save_metrics(out / "metrics.json"), result.save_samples(out / "samples.jsonl")
        print(f"wrote {metrics} and {samples}")
    return 0
