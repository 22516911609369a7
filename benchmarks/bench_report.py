"""The report of `step_benchmark.py`: ratios to TRL per lit-daa layout, checks, and the markdown section."""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from typing import Any


def median_rate(r: dict[str, Any]) -> float:
    """Pairs per second at the median step time: robust to a few steps slowed by other processes."""
    return r["batch_size"] * 1000 / r["median_step_ms"]


def fmt_mem(mib: float | None) -> str:
    return "n/a" if mib is None else f"{mib:,.0f} MiB"


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One framework's repeats: medians of speed and step time, the largest peak memory; checks from the first run."""
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return runs[0]
    first = dict(ok[0])
    first["pairs_per_s"] = statistics.median(r["pairs_per_s"] for r in ok)
    first["median_step_ms"] = statistics.median(r["median_step_ms"] for r in ok)
    first["setup_s"] = statistics.median(r["setup_s"] for r in ok)
    first["peak_mem_mib"] = max(r["peak_mem_mib"] for r in ok)
    working = [r["working_mem_mib"] for r in ok if r.get("working_mem_mib") is not None]
    first["working_mem_mib"] = max(working) if working else None
    first["repeats"] = [round(r["pairs_per_s"], 2) for r in ok]
    first["failed_repeats"] = len(runs) - len(ok)
    first["load"] = [r["load"] for r in ok]
    return first


def amortised_rate(r: dict[str, Any], sweep_runs: int) -> float | None:
    """Pairs/s counting the reference precompute spread over `sweep_runs` runs that share it (cached variants)."""
    if not r.get("precompute_s"):
        return None
    timed = len(r["step_ms"]) * r["batch_size"]
    window = timed / r["pairs_per_s"]
    return timed / (window + r["precompute_s"] * timed / r["num_pairs"] / sweep_runs)


def summarize(results: dict[str, dict[str, Any]], sweep_runs: int = 20) -> dict[str, dict[str, Any]]:
    """Per lit-daa variant: ratios to TRL and the checks that both computed the same losses."""
    out: dict[str, dict[str, Any]] = {}
    trl = results.get("trl")
    if not trl or "error" in trl:
        return out
    for name, lit in results.items():
        if name == "trl" or "error" in lit:
            continue
        s: dict[str, Any] = {
            "speed_ratio": lit["pairs_per_s"] / trl["pairs_per_s"],
            "median_ratio": median_rate(lit) / median_rate(trl),
            "token_ratio": statistics.fmean(lit["tokens"]) / statistics.fmean(trl["tokens"]),
            "same_shapes": lit["shapes"] == trl["shapes"],
            "same_tokens": lit["tokens"] == trl["tokens"],
        }
        if lit["peak_mem_mib"] and trl["peak_mem_mib"]:
            s["mem_ratio"] = lit["peak_mem_mib"] / trl["peak_mem_mib"]
        if lit.get("working_mem_mib") and trl.get("working_mem_mib"):
            s["working_ratio"] = lit["working_mem_mib"] / trl["working_mem_mib"]
        amortised = amortised_rate(lit, sweep_runs)
        if amortised is not None:
            s["amortised_ratio"] = amortised / trl["pairs_per_s"]
            s["amortised_rate"] = amortised
        diffs = [abs(a - b) for a, b in zip(lit["losses"], trl["losses"], strict=False)]
        s["first_loss"] = (lit["losses"][0], trl["losses"][0])
        s["last_loss"] = (lit["losses"][-1], trl["losses"][-1])
        s["max_loss_diff"] = max(diffs) if diffs else float("nan")
        out[name] = s
    return out


def table_lines(results: dict[str, dict[str, Any]], summary: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        "| framework | pairs/s | median step (ms) | pairs/s at median step | real tokens per step | peak memory "
        "| working memory | / TRL pairs/s | / TRL at median step | / TRL memory | / TRL working memory |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        if "error" in r:
            lines.append(f"| {name} | failed ({r['error']}) | | | | | | | | | |")
            continue
        s = summary.get(name, {})
        ratios = (
            f"**{s['speed_ratio']:.2f}x** | {s['median_ratio']:.2f}x | "
            f"{(str(round(s['mem_ratio'], 2)) + 'x') if 'mem_ratio' in s else 'n/a'} | "
            f"{(str(round(s['working_ratio'], 2)) + 'x') if 'working_ratio' in s else 'n/a'}"
            if s
            else " | | | "
        )
        lines.append(
            f"| {name} | {r['pairs_per_s']:.2f} | {r['median_step_ms']:.1f} | {median_rate(r):.2f} "
            f"| {statistics.fmean(r['tokens']):,.0f} | {fmt_mem(r['peak_mem_mib'])} "
            f"| {fmt_mem(r.get('working_mem_mib'))} | {ratios} |"
        )
    return lines


def check_lines(summary: dict[str, dict[str, Any]], sweep_runs: int = 20) -> list[str]:
    lines = []
    for name, s in summary.items():
        lines.append(
            f"- {name}: real tokens per step {s['token_ratio']:.2f}x TRL's; loss at step 1 {s['first_loss'][0]:.6f} "
            f"(TRL {s['first_loss'][1]:.6f}), at the last step {s['last_loss'][0]:.6f} (TRL {s['last_loss'][1]:.6f}); "
            f"largest per-step loss difference {s['max_loss_diff']:.2e}"
            + ("; same padded shapes and tokens as TRL every step" if s["same_shapes"] and s["same_tokens"] else "")
        )
        if "amortised_ratio" in s:
            lines.append(
                f"- {name}: with the reference precompute amortised over a {sweep_runs}-run sweep: "
                f"{s['amortised_rate']:.2f} pairs/s, **{s['amortised_ratio']:.2f}x** TRL"
            )
    return lines


RESIDUAL_NOTES = [
    "Tokenization: lit-daa tokenizes prompt and response separately and appends the EOS id; TRL appends the EOS "
    "text and tokenizes prompt and prompt+response. With the synthetic word-level tokenizer both give the same "
    "ids (checked above through the per-step token counts and shapes).",
    "Truncation: lit-daa cuts the prompt from the left (max_prompt_length) and responses from the right; TRL 1.16 "
    "cuts prompt+response to max_length from the right. The benchmark's pairs fit both limits, so nothing is cut.",
    "Log-probs: lit-daa runs the LM head only on the positions that predict a response token, and (its default "
    "head, `+chunked`) a chunk of rows at a time with a backward that recomputes each chunk, so the logits are "
    "never held whole (`+logits`: the head builds them and autograd keeps them); TRL patches a fused, tiled LM "
    "head that projects only the completion positions. At the synthetic vocabulary (151 tokens; --vocab pads "
    "it) the head is a negligible part of the step; at 50k and more it dominates the working memory.",
    "Per-step extras: both compute logging metrics every step (lit-daa: torchmetrics preference metrics; TRL: "
    "rewards, margins, entropy, top-1 accuracy with .item() syncs); neither writes logs or checkpoints during "
    "the timed steps (Lightning logger off, TRL logging_strategy and save_strategy 'no').",
    "Data order: the pairs are fed to TRL sequentially in lit-daa's epoch-0 shuffle order, so both see the same "
    "pairs in every step. AdamW is torch.optim.AdamW (weight decay 0, constant LR) in both (TRL's default would "
    "be the fused kernel with a linear schedule; --fused-adamw switches both to fused).",
]


def repeat_lines(results: dict[str, dict[str, Any]]) -> list[str]:
    lines = []
    for name, r in results.items():
        if "repeats" in r and len(r["repeats"]) > 1:
            lines.append(f"- {name}: pairs/s of each run {r['repeats']} (the table gives the median)")
    loads = [f"{name} {[tuple(x) for x in r['load']]}" for name, r in results.items() if "load" in r]
    if loads:
        lines.append("- 1-minute load average at the start and end of each run: " + "; ".join(loads))
    return lines


def device_line(results: dict[str, dict[str, Any]]) -> str:
    for r in results.values():
        if "device_name" in r:
            return r["device_name"]
    return "unknown"


def markdown_section(
    args: argparse.Namespace,
    command: str,
    results: dict[str, dict[str, Any]],
    summary: dict[str, dict[str, Any]],
    info: dict[str, Any],
) -> str:
    first = next((r for r in results.values() if "versions" in r), {})
    versions = ", ".join(f"{k} {v}" for k, v in first.get("versions", {}).items())
    precompute = [f"{n} {r['precompute_s']:.1f} s" for n, r in results.items() if r.get("precompute_s")]
    lines = [
        f"## {time.strftime('%Y-%m-%d %H:%M')} — {info['device']} — {device_line(results)}",
        "",
        f"Command: `{command}`",
        "",
        f"- versions: Python {platform.python_version()}, {versions}",
        f"- model: {info['model']} ({info.get('params_m', 0):.1f} M parameters), frozen reference = a second copy",
        f"- data: {info['data']}; sequences (prompt + one response) {info['lengths']['mean_sequence_tokens']:.1f}"
        f" tokens on average, at most {info['lengths']['max_sequence_tokens']} (max_length {args.max_length}), "
        f"{info['lengths']['unk_tokens']} unknown tokens; "
        f"truncation: {'YES (frameworks differ)' if info['lengths']['truncation'] else 'none'}",
        f"- {args.batch_size} pairs ({2 * args.batch_size} sequences) per step, {args.steps} steps, the first "
        f"{args.warmup} untimed; precision {info['precision']}; DPO sigmoid beta {args.beta}; AdamW lr {args.lr}, "
        f"weight decay 0{', fused' if args.fused_adamw else ''}; gradient clip {args.grad_clip or 'none'}; "
        f"length buckets of {args.bucket_batches} batches (both frameworks see the same pairs in every step); "
        f"packing budget {args.token_budget} tokens",
        f"- peak memory: {info['memory_kind']}",
        *([f"- reference precompute (all {info['num_pairs']} pairs): " + ", ".join(precompute)] if precompute else []),
        *repeat_lines(results),
        "",
        *table_lines(results, summary),
        "",
        *check_lines(summary, args.sweep_runs),
        "",
    ]
    return "\n".join(lines)
