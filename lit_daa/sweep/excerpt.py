"""A few samples per checkpoint of one run, as Markdown: what the policy actually writes as KL grows.

lit-daa sweep --config configs/sweeps/lab.yaml --excerpt tiny-DPO-beta0.01-s0 > docs/lab/samples.md
"""

from __future__ import annotations

import json
from pathlib import Path

from lit_daa.errors import InputError
from lit_daa.evaluation.judges.base import Judge
from lit_daa.sweep.runs import Run
from lit_daa.sweep.table import read_rows

COLUMNS = ("epoch_fraction", "sqrt_kl", "win_rate", "mean_length", "cut_share", "gold_reward")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").strip() or "(empty)"


def excerpt(run: Run, judge: Judge, count: int = 6) -> str:
    """Markdown: per evaluated checkpoint of `run` (by step), its row's headline numbers and its first `count`
    samples with the judge's verdict and, when the judge has them, its reward terms."""
    evals = sorted((run.root / "evals").glob("*.samples.jsonl"))
    if not evals:
        raise InputError(f"run {run.run_id} has no saved samples in {run.root / 'evals'} (evaluate it first)")
    lines = [f"# Samples of {run.run_id}", "", f"The first {count} evaluation prompts at every checkpoint.", ""]
    for path in evals:
        row = read_rows(path.with_name(path.name.replace(".samples.jsonl", ".json")))[0]
        samples = [json.loads(line) for line in path.read_text().splitlines()[:count]]
        parts = judge.components([s["prompt"] for s in samples], [s["response"] for s in samples])
        numbers = ", ".join(f"{c} {row[c]:.3g}" for c in COLUMNS if c in row)
        lines += [f"## {Path(path.name).stem.removesuffix('.samples')}: {numbers}", ""]
        terms = list(parts)
        lines += ["| prompt | response | human reference | verdict | cut | " + " | ".join(terms) + " |"]
        lines += ["|" + "---|" * (5 + len(terms))]
        for i, s in enumerate(samples):
            values = " | ".join(f"{parts[t][i]:g}" for t in terms)
            lines.append(
                f"| {_cell(s['prompt'])} | {_cell(s['response'])} | {_cell(s['reference'])} | {s['verdict']} | "
                f"{'yes' if s.get('cut') else 'no'} | {values} |"
            )
        lines.append("")
    return "\n".join(lines)
