"""Training-step benchmark: lit-daa (Lightning) against TRL's DPOTrainer on the same model, data and settings.

The lit-daa variants differ only in `data.layout` (Concatenated, SharedPrompt, Packed) and in where the reference
log-probs come from (`-cached`: the reference cache, its precompute timed and amortised over `--sweep-runs`).

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
    python benchmarks/step_benchmark.py --data tldr --model random-neox:256x4x4 --frameworks \\
        lit-daa,lit-daa-shared,lit-daa-packed,lit-daa-packed-cached,trl     # the TL;DR shape, every layout
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
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "benchmarks"):  # run as a script from a checkout that is not pip-installed
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from bench_data import length_report, make_rows, prepare_model, write_rows  # noqa: E402
from bench_report import RESIDUAL_NOTES, combine, fmt_mem, markdown_section, summarize  # noqa: E402
from bench_worker import HEADS, VARIANTS, worker_main  # noqa: E402

FRAMEWORKS = (*VARIANTS, "trl")


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
    p.add_argument("--data", choices=("world", "tldr"), default="world", help="pair shape (default: %(default)s)")
    p.add_argument("--prompt-range", default="150,500", help="--data tldr: MIN,MAX prompt words (default: %(default)s)")
    p.add_argument("--token-budget", type=int, default=2048, help="Packed layout's tokens per row (%(default)s)")
    p.add_argument(
        "--vocab",
        type=int,
        default=None,
        help="random-neox only: pad the vocabulary (embedding and LM head) to this size, e.g. 50304 (default: 151)",
    )
    p.add_argument(
        "--heads",
        default="default",
        help=f"comma-separated LM heads to run each lit-daa variant with, of {', '.join(HEADS)} (default: %(default)s)",
    )
    p.add_argument("--bucket-batches", type=int, default=0, help="length buckets, in batches (default: off)")
    p.add_argument("--sweep-runs", type=int, default=20, help="runs a reference precompute is amortised over")
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
        args.prompt_range = tuple(int(x) for x in args.prompt_range.split(","))
        args.framework_list = [f.strip() for f in args.frameworks.split(",") if f.strip()]
        unknown = set(args.framework_list) - set(FRAMEWORKS)
        if unknown or not args.framework_list:
            p.error(f"--frameworks takes a comma-separated subset of {', '.join(FRAMEWORKS)}")
        args.head_list = [h.strip() for h in args.heads.split(",") if h.strip()]
        if not args.head_list or set(args.head_list) - set(HEADS):
            p.error(f"--heads takes a comma-separated subset of {', '.join(HEADS)}")
    return args


def choose_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise SystemExit("step_benchmark: --device cuda, but torch sees no CUDA device")
    return requested


def run_worker(framework: str, spec: dict[str, Any], workdir: Path, log_dir: Path, tag: str) -> dict[str, Any]:
    spec_path = workdir / f"spec-{tag}.json"
    result_path = workdir / f"result-{tag}.json"
    spec_path.write_text(json.dumps(spec))
    log_path = log_dir / f"{tag}.log"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", framework, "--spec", str(spec_path)]
    cmd += ["--result", str(result_path)]
    # a cache of its own per worker: a cached variant computes its reference log-probs (and is timed doing so)
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1", LIT_DAA_CACHE=str(workdir / tag))
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
        model_path, model_desc = prepare_model(args.model, args.max_length, workdir, args.vocab)
        num_pairs = args.steps * args.batch_size
        rows, data_desc = make_rows(args, num_pairs)
        pairs_path = write_rows(rows, workdir / "pairs.jsonl")
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
            "pairs_path": str(pairs_path),
            "token_budget": args.token_budget,
            "bucket_batches": args.bucket_batches,
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
        # each lit-daa variant once per head; a name gains "+head" when more than one head is compared
        named = [
            (f if f == "trl" or len(args.head_list) == 1 else f"{f}+{h}", f, h)
            for f in frameworks
            for h in (["default"] if f == "trl" else args.head_list)
        ]
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in named}
        for repeat in range(args.repeats):
            for name, framework, head in named:
                label = name if args.repeats == 1 else f"{name} #{repeat + 1}"
                print(f"[{label}] running in a fresh subprocess ...", flush=True)
                tag = name.replace("+", "-") if args.repeats == 1 else f"{name.replace('+', '-')}-{repeat + 1}"
                r = run_worker(framework, {**spec, "head": head}, workdir, log_dir, tag)
                r["framework"] = name
                runs[name].append(r)
                if "error" not in r:
                    print(
                        f"[{label}] {r['pairs_per_s']:.2f} pairs/s (median step {r['median_step_ms']:.1f} ms), "
                        f"peak {fmt_mem(r['peak_mem_mib'])}, {r['wall_s']:.0f} s in all",
                        flush=True,
                    )
        results = {f: combine(rs) for f, rs in runs.items()}
        summary = summarize(results, args.sweep_runs)
        info = {
            "device": device,
            "model": model_desc,
            "params_m": next((r["params_m"] for r in results.values() if "params_m" in r), 0.0),
            "num_pairs": num_pairs,
            "data": data_desc,
            "lengths": lengths,
            "precision": precision,
            "memory_kind": (
                "torch.cuda.max_memory_allocated over the fit, each framework in its own process"
                if device == "cuda"
                else "peak RSS of the framework's own process minus its RSS once the framework was imported"
                " (before any model or data was loaded)"
            )
            + "; working memory: the peak minus what was in use once the models were loaded (at the start of"
            " training), i.e. what the steps add",
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


if __name__ == "__main__":
    sys.exit(main())
