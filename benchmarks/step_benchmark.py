"""Training-step benchmark: lit-daa (Lightning) against TRL's DPOTrainer on the same model, data and settings.

Both frameworks train the same checkpoint with DPO (sigmoid loss, beta 0.1) against a frozen copy of it, on the
same synthetic preference pairs in the same order, with the same batch size (pairs per optimizer step; a batch is
2 x batch_size sequences), precision (fp32 on CPU, bf16 autocast over fp32 weights on CUDA), AdamW settings,
gradient clipping and number of steps. Each framework runs in its own fresh subprocess, so that neither one's
imports, caches or allocations pollute the other's memory numbers.

Measured per framework:

- pairs/s: (steps - warmup) * batch_size / time, the time taken between the end of step `warmup` and the end of
  the last step (time.perf_counter at step boundaries, after torch.cuda.synchronize on CUDA);
- peak memory: on CUDA torch.cuda.max_memory_allocated over the whole fit (reset at the start of the subprocess);
  on CPU the peak resident set size of the subprocess minus its resident size after imports, before any model
  was loaded;
- the loss of every step, the real (non-padding) tokens and the padded shape of every batch, so the two runs can
  be checked to compute the same thing: same shapes and tokens, and losses that agree to float tolerance.

Usage (from the repository root):

    python benchmarks/step_benchmark.py                       # embedded:neox-small, batch 8, 30 steps, 5 warm-up
    python benchmarks/step_benchmark.py --device cuda --model random-neox:768x12x12 \\
        --response-words 100,240 --max-length 256 --batch-size 16 --steps 60 --warmup 10 --out RESULTS-gpu.md

`--model` takes an embedded name (`embedded:neox-small`), a local Hugging Face folder, or
`random-neox:HIDDENxLAYERSxHEADS`: a randomly initialised GPT-NeoX of that shape over the synthetic world's
vocabulary (e.g. 768x12x12 is Pythia-160M's shape apart from the vocabulary), built into a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from a checkout that is not pip-installed
    sys.path.insert(0, str(REPO))

FRAMEWORKS = ("lit-daa", "trl")
RANDOM_NEOX = re.compile(r"^random-neox:(\d+)x(\d+)x(\d+)$")


# ----------------------------------------------------------------------------------------------------------------
# Parent: options, preparation, subprocesses, report
# ----------------------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="step_benchmark.py",
        description="Time DPO training steps of lit-daa and TRL on the same tiny model and synthetic pairs.",
    )
    p.add_argument(
        "--model",
        default="embedded:neox-small",
        help="embedded name, local HF folder, or random-neox:HIDDENxLAYERSxHEADS (default: %(default)s)",
    )
    p.add_argument("--steps", type=int, default=30, help="optimizer steps per framework (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=5, help="first steps left out of the timing (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=8, help="pairs per step (default: %(default)s)")
    p.add_argument("--max-length", type=int, default=64, help="most tokens of prompt + response (default: %(default)s)")
    p.add_argument(
        "--max-prompt-length", type=int, default=32, help="most prompt tokens, lit-daa only (default: %(default)s)"
    )
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="(default: %(default)s)")
    p.add_argument("--lr", type=float, default=1e-5, help="AdamW learning rate (default: %(default)s)")
    p.add_argument("--beta", type=float, default=0.1, help="DPO beta (default: %(default)s)")
    p.add_argument("--grad-clip", type=float, default=1.0, help="max gradient norm, 0 for none (default: %(default)s)")
    p.add_argument("--fused-adamw", action="store_true", help="use AdamW(fused=True) in both frameworks")
    p.add_argument(
        "--response-words",
        default="3,10",
        help="MIN,MAX words per synthetic response; longer responses give longer sequences (default: %(default)s)",
    )
    p.add_argument("--prompt-words", type=int, default=3, help="topic words quoted per prompt (default: %(default)s)")
    p.add_argument("--pair-seed", type=int, default=0, help="seed of SyntheticWorld().pairs (default: %(default)s)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads in each run (default: torch's)")
    p.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="run each framework this many times, alternating, and report the median (default: %(default)s)",
    )
    p.add_argument("--frameworks", default=",".join(FRAMEWORKS), help="which to run (default: %(default)s)")
    p.add_argument("--out", default=None, help="append a markdown section with the results to this file")
    p.add_argument("--log-dir", default=None, help="keep each framework's full output here (default: temp, removed)")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--spec", default=None, help=argparse.SUPPRESS)
    p.add_argument("--result", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker is None:
        if args.steps <= args.warmup or args.warmup < 0:
            p.error(f"--steps ({args.steps}) must exceed --warmup ({args.warmup}), which must be >= 0")
        if args.batch_size < 1 or args.repeats < 1:
            p.error("--batch-size and --repeats must be at least 1")
        if not 1 <= args.max_prompt_length < args.max_length:
            p.error("--max-prompt-length must be at least 1 and below --max-length")
        try:
            lo, hi = (int(x) for x in args.response_words.split(","))
        except ValueError:
            p.error("--response-words must be MIN,MAX")
        if not 1 <= lo <= hi:
            p.error("--response-words needs 1 <= MIN <= MAX")
        args.response_range = (lo, hi)
        args.framework_list = [f.strip() for f in args.frameworks.split(",") if f.strip()]
        unknown = set(args.framework_list) - set(FRAMEWORKS)
        if unknown or not args.framework_list:
            p.error(f"--frameworks takes a comma-separated subset of {', '.join(FRAMEWORKS)}")
    return args


def choose_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise SystemExit("step_benchmark: --device cuda, but torch sees no CUDA device")
    return requested


def prepare_model(name: str, max_length: int, workdir: Path) -> tuple[str, str]:
    """Return (folder to load, description): resolve an embedded name or folder, or build a random GPT-NeoX."""
    from lit_daa.models import resolve_model

    match = RANDOM_NEOX.match(name)
    if match is None:
        return resolve_model(name), name
    from lit_daa.synthetic.model import TinyNeoX

    hidden, layers, heads = (int(g) for g in match.groups())
    if hidden % heads:
        raise SystemExit(f"step_benchmark: {name}: the hidden size must be a multiple of the number of heads")
    folder = workdir / f"random-neox-{hidden}x{layers}x{heads}"
    TinyNeoX(hidden_size=hidden, num_layers=layers, num_heads=heads, max_positions=max(128, max_length)).build(folder)
    return str(folder), f"{name} (random GPT-NeoX, synthetic word tokenizer)"


def world_kwargs(args: argparse.Namespace) -> dict[str, int]:
    lo, hi = args.response_range
    return {"min_length": lo, "max_length": hi, "prompt_words": args.prompt_words}


def length_report(model_path: str, rows: list[dict[str, str]], args: argparse.Namespace) -> dict[str, Any]:
    """Token lengths of the pairs, and whether either framework's truncation rule would cut anything."""
    from lit_daa.models import load_tokenizer

    tok = load_tokenizer(model_path)

    def ids(texts: list[str]) -> list[list[int]]:
        return tok(texts, add_special_tokens=False)["input_ids"]

    prompts = ids([r["prompt"] for r in rows])
    chosen = ids([r["chosen"] for r in rows])
    rejected = ids([r["rejected"] for r in rows])
    seqs = [len(p) + len(r) + 1 for p, c, rj in zip(prompts, chosen, rejected, strict=True) for r in (c, rj)]
    return {
        "max_prompt_tokens": max(len(p) for p in prompts),
        "mean_sequence_tokens": statistics.fmean(seqs),
        "max_sequence_tokens": max(seqs),
        "unk_tokens": sum(x == tok.unk_token_id for group in (prompts, chosen, rejected) for row in group for x in row),
        "truncation": max(len(p) for p in prompts) > args.max_prompt_length or max(seqs) > args.max_length,
    }


def run_worker(framework: str, spec: dict[str, Any], workdir: Path, log_dir: Path, tag: str) -> dict[str, Any]:
    spec_path = workdir / f"spec-{tag}.json"
    result_path = workdir / f"result-{tag}.json"
    spec_path.write_text(json.dumps(spec))
    log_path = log_dir / f"{tag}.log"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", framework, "--spec", str(spec_path)]
    cmd += ["--result", str(result_path)]
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    if spec.get("threads"):
        env["OMP_NUM_THREADS"] = str(spec["threads"])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    start = time.perf_counter()
    with log_path.open("w") as log:
        code = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(workdir))
    wall = time.perf_counter() - start
    if code != 0 or not result_path.exists():
        tail = log_path.read_text(errors="replace").splitlines()[-25:]
        print(f"[{framework}] failed (exit {code}); last lines of {log_path}:", *tail, sep="\n  ", flush=True)
        return {"framework": framework, "error": f"exit {code}", "wall_s": wall}
    result = json.loads(result_path.read_text())
    result["wall_s"] = wall
    if log_dir != workdir:  # keep the per-step times (step_ms) beside the logs for a closer look
        shutil.copy(result_path, log_dir / result_path.name)
    return result


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
    first["repeats"] = [round(r["pairs_per_s"], 2) for r in ok]
    first["failed_repeats"] = len(runs) - len(ok)
    first["load"] = [r["load"] for r in ok]
    return first


def summarize(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Ratios and the checks that both frameworks computed the same thing."""
    out: dict[str, Any] = {}
    lit, trl = results.get("lit-daa"), results.get("trl")
    if not (lit and trl and "error" not in lit and "error" not in trl):
        return out
    out["speed_ratio"] = lit["pairs_per_s"] / trl["pairs_per_s"]
    out["median_ratio"] = median_rate(lit) / median_rate(trl)
    if lit["peak_mem_mib"] and trl["peak_mem_mib"]:
        out["mem_ratio"] = lit["peak_mem_mib"] / trl["peak_mem_mib"]
    out["same_shapes"] = lit["shapes"] == trl["shapes"]
    out["same_tokens"] = lit["tokens"] == trl["tokens"]
    diffs = [abs(a - b) for a, b in zip(lit["losses"], trl["losses"], strict=False)]
    out["first_loss"] = (lit["losses"][0], trl["losses"][0])
    out["last_loss"] = (lit["losses"][-1], trl["losses"][-1])
    out["max_loss_diff"] = max(diffs) if diffs else float("nan")
    return out


def table_lines(results: dict[str, dict[str, Any]], summary: dict[str, Any]) -> list[str]:
    lines = [
        "| framework | pairs/s | median step (ms) | pairs/s at median step | peak memory | setup to step 1 (s) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        if "error" in r:
            lines.append(f"| {name} | failed ({r['error']}) | | | | |")
            continue
        lines.append(
            f"| {name} | {r['pairs_per_s']:.2f} | {r['median_step_ms']:.1f} | {median_rate(r):.2f} "
            f"| {fmt_mem(r['peak_mem_mib'])} | {r['setup_s']:.1f} |"
        )
    if "speed_ratio" in summary:
        mem = f"{summary['mem_ratio']:.2f}x" if "mem_ratio" in summary else "n/a"
        lines.append(
            f"| **lit-daa / TRL** | **{summary['speed_ratio']:.2f}x** | | **{summary['median_ratio']:.2f}x** "
            f"| **{mem}** | |"
        )
    return lines


def check_lines(summary: dict[str, Any]) -> list[str]:
    if "speed_ratio" not in summary:
        return []
    return [
        f"- same padded batch shapes every step: {summary['same_shapes']}; "
        f"same real (non-padding) tokens every step: {summary['same_tokens']}",
        f"- loss at step 1: lit-daa {summary['first_loss'][0]:.6f}, TRL {summary['first_loss'][1]:.6f}; "
        f"at the last step: lit-daa {summary['last_loss'][0]:.6f}, TRL {summary['last_loss'][1]:.6f}; "
        f"largest per-step difference {summary['max_loss_diff']:.2e}",
    ]


RESIDUAL_NOTES = [
    "Tokenization: lit-daa tokenizes prompt and response separately and appends the EOS id; TRL appends the EOS "
    "text and tokenizes prompt and prompt+response. With the synthetic word-level tokenizer both give the same "
    "ids (checked above through the per-step token counts and shapes).",
    "Truncation: lit-daa cuts the prompt from the left (max_prompt_length) and responses from the right; TRL 1.16 "
    "cuts prompt+response to max_length from the right. The benchmark's pairs fit both limits, so nothing is cut.",
    "Log-probs: lit-daa runs the LM head from the first response position of the batch (logits_to_keep) and "
    "reduces in fp32 chunks; TRL patches a fused, tiled LM head that projects only the completion positions. "
    "With the synthetic vocabulary (151 tokens) the LM head is a negligible part of the step; with a real "
    "50k-token vocabulary the two strategies would differ more.",
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
    summary: dict[str, Any],
    info: dict[str, Any],
) -> str:
    first = next((r for r in results.values() if "versions" in r), {})
    versions = ", ".join(f"{k} {v}" for k, v in first.get("versions", {}).items())
    lo, hi = args.response_range
    lines = [
        f"## {time.strftime('%Y-%m-%d %H:%M')} — {info['device']} — {device_line(results)}",
        "",
        f"Command: `{command}`",
        "",
        f"- versions: Python {platform.python_version()}, {versions}",
        f"- model: {info['model']} ({info.get('params_m', 0):.1f} M parameters), frozen reference = a second copy",
        f"- data: SyntheticWorld(min_length={lo}, max_length={hi}, prompt_words={args.prompt_words})"
        f".pairs({info['num_pairs']}, seed={args.pair_seed}); sequences {info['lengths']['mean_sequence_tokens']:.1f}"
        f" tokens on average, at most {info['lengths']['max_sequence_tokens']} (max_length {args.max_length}), "
        f"{info['lengths']['unk_tokens']} unknown tokens; "
        f"truncation: {'YES (frameworks differ)' if info['lengths']['truncation'] else 'none'}",
        f"- {args.batch_size} pairs ({2 * args.batch_size} sequences) per step, {args.steps} steps, the first "
        f"{args.warmup} untimed; precision {info['precision']}; DPO sigmoid beta {args.beta}; AdamW lr {args.lr}, "
        f"weight decay 0{', fused' if args.fused_adamw else ''}; gradient clip {args.grad_clip or 'none'}",
        f"- peak memory: {info['memory_kind']}",
        *repeat_lines(results),
        "",
        *table_lines(results, summary),
        "",
        *check_lines(summary),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker is not None:
        return worker_main(args.worker, Path(args.spec), Path(args.result))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    frameworks = list(args.framework_list)
    if "trl" in frameworks:
        try:
            import trl  # noqa: F401
        except ImportError as err:
            print(f"note: TRL is not importable ({err}); benchmarking lit-daa alone", flush=True)
            frameworks.remove("trl")
    device = choose_device(args.device)
    workdir = Path(tempfile.mkdtemp(prefix="step-benchmark-"))
    log_dir = Path(args.log_dir) if args.log_dir else workdir
    log_dir.mkdir(parents=True, exist_ok=True)
    try:
        model_path, model_desc = prepare_model(args.model, args.max_length, workdir)
        from lit_daa.synthetic.world import SyntheticWorld

        num_pairs = args.steps * args.batch_size
        rows = SyntheticWorld(**world_kwargs(args)).pairs(num_pairs, args.pair_seed)
        lengths = length_report(model_path, rows, args)
        if lengths["truncation"]:
            print(
                "warning: some pairs exceed --max-length/--max-prompt-length; lit-daa and TRL truncate differently,"
                " so they will not see identical sequences",
                flush=True,
            )
        spec = {
            "model_path": model_path,
            "device": device,
            "steps": args.steps,
            "warmup": args.warmup,
            "batch_size": args.batch_size,
            "max_length": args.max_length,
            "max_prompt_length": args.max_prompt_length,
            "lr": args.lr,
            "beta": args.beta,
            "grad_clip": args.grad_clip,
            "fused_adamw": args.fused_adamw,
            "num_pairs": num_pairs,
            "pair_seed": args.pair_seed,
            "world": world_kwargs(args),
            "data_seed": 42,
            "threads": args.threads,
            "workdir": str(workdir),
        }
        precision = "bf16 autocast, fp32 weights" if device == "cuda" else "fp32"
        print(
            f"step benchmark: {model_desc} on {device} ({precision}); {args.batch_size} pairs/step, {args.steps} steps"
            f" ({args.warmup} warm-up); sequences <= {lengths['max_sequence_tokens']} tokens",
            flush=True,
        )
        runs: dict[str, list[dict[str, Any]]] = {f: [] for f in frameworks}
        for repeat in range(args.repeats):
            for framework in frameworks:
                label = framework if args.repeats == 1 else f"{framework} #{repeat + 1}"
                print(f"[{label}] running in a fresh subprocess ...", flush=True)
                tag = framework if args.repeats == 1 else f"{framework}-{repeat + 1}"
                r = run_worker(framework, spec, workdir, log_dir, tag)
                runs[framework].append(r)
                if "error" not in r:
                    print(
                        f"[{label}] {r['pairs_per_s']:.2f} pairs/s (median step {r['median_step_ms']:.1f} ms), "
                        f"peak {fmt_mem(r['peak_mem_mib'])}, {r['wall_s']:.0f} s in all",
                        flush=True,
                    )
        results = {f: combine(rs) for f, rs in runs.items()}
        summary = summarize(results)
        info = {
            "device": device,
            "model": model_desc,
            "params_m": next((r["params_m"] for r in results.values() if "params_m" in r), 0.0),
            "num_pairs": num_pairs,
            "lengths": lengths,
            "precision": precision,
            "memory_kind": (
                "torch.cuda.max_memory_allocated over the fit, each framework in its own process"
                if device == "cuda"
                else "peak RSS of the framework's own process minus its RSS once the framework was imported"
                " (before any model or data was loaded)"
            ),
        }
        command = "python benchmarks/step_benchmark.py " + shlex.join(argv if argv is not None else sys.argv[1:])
        section = markdown_section(args, command.strip(), results, summary, info)
        print()
        print(section)
        print("Residual differences between the two runs:")
        for note in RESIDUAL_NOTES:
            print(f"- {note}")
        if args.out:
            out = Path(args.out)
            out.parent.mkdir(parents=True, exist_ok=True)
            with out.open("a") as handle:
                handle.write(("\n" if out.exists() and out.stat().st_size else "") + section)
            print(f"\nappended to {out}")
        return 0 if results and all("error" not in r for rs in runs.values() for r in rs) else 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# ----------------------------------------------------------------------------------------------------------------
# Worker: one framework in its own process
# ----------------------------------------------------------------------------------------------------------------


def current_rss_mib() -> float:
    """Resident set size of this process now (Linux /proc; psutil elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def peak_rss_mib() -> float:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def cpu_name() -> str:
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} logical CPUs"


class Recorder:
    """Step-boundary timestamps and per-step loss/tokens/shape, kept on device until the end (no extra syncs)."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        self.start: float | None = None
        self.times: list[float] = []
        self.losses: list[Any] = []
        self.tokens: list[Any] = []
        self.shapes: list[list[int]] = []

    def now(self) -> float:
        if self.cuda:
            import torch

            torch.cuda.synchronize()
        return time.perf_counter()

    def begin(self) -> None:
        self.start = self.now()

    def batch(self, loss: Any, input_ids: Any, attention_mask: Any) -> None:
        self.losses.append(loss.detach().float())
        self.tokens.append(attention_mask.sum())
        self.shapes.append(list(input_ids.shape))

    def step_end(self) -> None:
        self.times.append(self.now())


def worker_main(framework: str, spec_path: Path, result_path: Path) -> int:
    spec = json.loads(spec_path.read_text())
    import torch

    cuda = spec["device"] == "cuda"
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    if cuda:
        torch.cuda.init()
        torch.cuda.reset_peak_memory_stats()
    # Import the whole framework before taking the baseline: the memory reported is what training adds.
    if framework == "trl":
        from trl import DPOConfig, DPOTrainer  # noqa: F401
    else:
        import lit_daa.data.datamodule  # noqa: F401
        import lit_daa.module  # noqa: F401
    baseline_rss = current_rss_mib()
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    t0 = time.perf_counter()
    recorder = Recorder(cuda)
    extra = run_lit_daa(spec, recorder) if framework == "lit-daa" else run_trl(spec, recorder)
    steps, warmup, batch = spec["steps"], spec["warmup"], spec["batch_size"]
    if len(recorder.times) != steps or len(recorder.losses) != steps:
        raise RuntimeError(f"recorded {len(recorder.times)} step ends and {len(recorder.losses)} losses, not {steps}")
    assert recorder.start is not None
    boundaries = [recorder.times[warmup - 1] if warmup > 0 else recorder.start, *recorder.times[warmup:]]
    window = boundaries[-1] - boundaries[0]
    step_ms = [1000 * (b - a) for a, b in zip(boundaries[:-1], boundaries[1:], strict=True)]
    versions = {"torch": torch.__version__}
    for mod in ("lightning", "transformers", "trl"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:
            pass
    if cuda:
        versions["cuda"] = torch.version.cuda
        peak = torch.cuda.max_memory_allocated() / 2**20
        device_name = torch.cuda.get_device_name(0)
    else:
        peak = peak_rss_mib() - baseline_rss
        device_name = cpu_name() + f", torch threads {torch.get_num_threads()}"
    result = {
        "framework": framework,
        "batch_size": batch,
        "pairs_per_s": (steps - warmup) * batch / window,
        "median_step_ms": statistics.median(step_ms),
        "step_ms": step_ms,
        "peak_mem_mib": peak,
        "baseline_rss_mib": baseline_rss,
        "setup_s": (recorder.start or t0) - t0,
        "losses": [float(x) for x in torch.stack(recorder.losses).cpu()],
        "tokens": [int(x) for x in torch.stack(recorder.tokens).cpu()],
        "shapes": recorder.shapes,
        "device_name": device_name,
        "load": [round(load_start, 2), round(os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan"), 2)],
        "versions": versions,
        **extra,
    }
    result_path.write_text(json.dumps(result))
    return 0


def optimizer_factory(spec: dict[str, Any]):
    import functools

    import torch

    kwargs = {"lr": spec["lr"], "weight_decay": 0.0}
    if spec["fused_adamw"]:
        kwargs["fused"] = True
    return functools.partial(torch.optim.AdamW, **kwargs)


def run_lit_daa(spec: dict[str, Any], recorder: Recorder) -> dict[str, Any]:
    import lightning as L

    from lit_daa.data.datamodule import PreferenceDataModule
    from lit_daa.module import DAAModule
    from lit_daa.objectives import DPO
    from lit_daa.synthetic.source import SyntheticPreferences

    class StepClock(L.Callback):
        def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            recorder.begin()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
            recorder.batch(outputs["loss"], batch["input_ids"], batch["attention_mask"])
            recorder.step_end()

    L.seed_everything(0, verbose=False)
    cuda = spec["device"] == "cuda"
    module = DAAModule(policy=spec["model_path"], objective=DPO(beta=spec["beta"]), optimizer=optimizer_factory(spec))
    world = spec["world"]
    source = SyntheticPreferences(num_train=spec["num_pairs"], num_val=0, seed=spec["pair_seed"], **world)
    data = PreferenceDataModule(
        tokenizer=spec["model_path"],
        source=source,
        val_fraction=0.0,
        max_length=spec["max_length"],
        max_prompt_length=spec["max_prompt_length"],
        batch_size=spec["batch_size"],
        num_workers=0,
        seed=spec["data_seed"],
    )
    trainer = L.Trainer(
        accelerator="gpu" if cuda else "cpu",
        devices=1,
        precision="bf16-mixed" if cuda else "32-true",
        max_steps=spec["steps"],
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        gradient_clip_val=spec["grad_clip"] or None,
        callbacks=[StepClock()],
        default_root_dir=str(Path(spec["workdir"]) / "lit-daa"),
    )
    trainer.fit(module, datamodule=data)
    params = sum(p.numel() for p in module.policy.parameters())
    return {"params_m": params / 1e6}


def lit_daa_order(spec: dict[str, Any]) -> list[int]:
    """The rows of lit-daa's first epoch, in the order its train loader serves them."""
    from lit_daa.data.resumable import ResumableSampler

    sampler = ResumableSampler(range(spec["num_pairs"]), batch_size=spec["batch_size"], seed=spec["data_seed"])
    return sampler.epoch_indices(0)


def run_trl(spec: dict[str, Any], recorder: Recorder) -> dict[str, Any]:
    from datasets import Dataset
    from torch.utils.data import SequentialSampler
    from transformers import TrainerCallback
    from trl import DPOConfig, DPOTrainer

    from lit_daa.models import load_causal_lm, load_tokenizer
    from lit_daa.synthetic.world import SyntheticWorld

    class SequentialDPOTrainer(DPOTrainer):
        """DPOTrainer that keeps the given row order and records each step's loss and batch."""

        def _get_train_sampler(self, train_dataset=None):  # noqa: ANN001 - signature varies across versions
            return SequentialSampler(train_dataset if train_dataset is not None else self.train_dataset)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: ANN001
            loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            if model.training:
                value = loss[0] if isinstance(loss, tuple) else loss
                recorder.batch(value, inputs["input_ids"], inputs["attention_mask"])
            return loss

    class StepClock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001
            recorder.begin()

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            recorder.step_end()

    cuda = spec["device"] == "cuda"
    rows = SyntheticWorld(**spec["world"]).pairs(spec["num_pairs"], spec["pair_seed"])
    ordered = [rows[i] for i in lit_daa_order(spec)]
    dataset = Dataset.from_list(ordered)
    policy = load_causal_lm(spec["model_path"], "float32")
    reference = load_causal_lm(spec["model_path"], "float32", "model.reference").eval().requires_grad_(False)
    tokenizer = load_tokenizer(spec["model_path"])
    config = DPOConfig(
        output_dir=str(Path(spec["workdir"]) / "trl"),
        per_device_train_batch_size=spec["batch_size"],
        gradient_accumulation_steps=1,
        max_steps=spec["steps"],
        learning_rate=spec["lr"],
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        optim="adamw_torch_fused" if spec["fused_adamw"] else "adamw_torch",
        max_grad_norm=spec["grad_clip"],
        beta=spec["beta"],
        loss_type=["sigmoid"],
        max_length=spec["max_length"],
        precompute_ref_log_probs=False,
        disable_dropout=True,
        gradient_checkpointing=False,
        bf16=cuda,
        fp16=False,
        use_cpu=not cuda,
        seed=0,
        report_to="none",
        logging_strategy="no",
        save_strategy="no",
        eval_strategy="no",
        disable_tqdm=True,
        dataloader_num_workers=0,
        dataloader_pin_memory=False,
    )
    trainer = SequentialDPOTrainer(
        model=policy,
        ref_model=reference,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[StepClock()],
    )
    trainer.train()
    params = sum(p.numel() for p in policy.parameters())
    return {"params_m": params / 1e6}


if __name__ == "__main__":
    sys.exit(main())
