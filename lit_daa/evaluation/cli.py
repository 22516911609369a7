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
from dataclasses import fields
from pathlib import Path

import torch
from jsonargparse import ActionConfigFile, ArgumentParser, Namespace

from lit_daa.evaluation.eval_set import eval_set, read_eval_file
from lit_daa.evaluation.evaluate import EvalResult, evaluate_policy
from lit_daa.evaluation.options import SYNTHETIC, EvaluationOptions
from lit_daa.models import load_causal_lm, load_tokenizer, resolve_model
from lit_daa.option_checks import check_cache_folder


def build_parser() -> ArgumentParser:
    """The `lit-daa evaluate` argument parser: the models, `EvaluationOptions` at the top level, and the output."""
    parser = ArgumentParser(prog="lit-daa evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--config", action=ActionConfigFile, help="a YAML file of these options")
    parser.add_argument("--policy", type=str, required=True, help="policy: HF folder, hub id or embedded name")
    parser.add_argument("--reference", type=str, required=True, help="reference (SFT) model: HF folder, hub id, ...")
    parser.add_class_arguments(EvaluationOptions, None)
    parser.add_argument("--beta", type=float | None, default=None, help="the objective's beta (implicit reward)")
    parser.add_argument("--out", type=str | None, default=None, help="folder for metrics.json and samples.jsonl")
    return parser


def options_of(args: Namespace) -> EvaluationOptions:
    """The `EvaluationOptions` of parsed, instantiated `lit-daa evaluate` arguments."""
    return EvaluationOptions(**{f.name: args[f.name] for f in fields(EvaluationOptions)})


def load_rows(options: EvaluationOptions) -> list[dict[str, str]]:
    """The evaluation rows {"prompt", "reference"} named by `options.prompts` (a file, or the synthetic world)."""
    if options.prompts == SYNTHETIC:
        return eval_set(options.world, options.num_prompts, options.prompts_seed)
    return read_eval_file(options.prompts)


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
    parsed = parser.parse_args(argv)
    check_cache_folder()
    for option in ("policy", "reference"):  # an empty or missing folder is named before anything loads
        resolve_model(parsed[option], f"--{option}")
    args = parser.instantiate_classes(parsed)
    options = options_of(args)
    rows = load_rows(options)
    device = torch.device(options.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    tokenizer = load_tokenizer(args.policy, option="--policy")
    policy = load_causal_lm(args.policy, dtype=options.dtype, option="--policy").to(device)
    # the same folder twice still gives two models; sequence_logratios then scores both (and gets exactly 0)
    reference = load_causal_lm(args.reference, dtype=options.dtype, option="--reference").to(device)
    prompts, references = [r["prompt"] for r in rows], [r["reference"] for r in rows]
    result = evaluate_policy(policy, reference, tokenizer, prompts, references, options, beta=args.beta)
    print(format_table(result))
    if args.out is not None:
        out = Path(args.out)
        metrics = result.save_metrics(out / "metrics.json")
        if options.save_samples:
            print(f"wrote {metrics} and {result.save_samples(out / 'samples.jsonl')}")
        else:
            print(f"wrote {metrics}")
    return 0
