"""Whole `lit-daa fit` runs of a Pythia-shaped random model: QLoRA against a bf16 full fine-tune and FSDP-QLoRA,
FSDP2 with a SIGKILL, a resume and a Hugging Face export, HSDP, and loading a large model under FSDP2 with the peak
host and device memory of each rank. Prints and appends a markdown section.

    python benchmarks/fit_benchmark.py --shape 2048x16x8 --runs qlora,fsdp-qlora,bf16-full --device cuda --out R.md
    python benchmarks/fit_benchmark.py --shape 1024x24x16 --runs fsdp2 --device cuda --out RESULTS-gpu.md
    python benchmarks/fit_benchmark.py --shape 4096x32x32 --vocab 50432 --runs fsdp2-load --steps 2 --devices 8 ...

Each run is the real CLI (`python -m lit_daa.cli fit ...`) in its own process with `fit_probe.FitProbe` recording
per-step times (CUDA synchronised at step boundaries), real tokens and `torch.cuda.max_memory_allocated`.

- steps/s: 1 / median step time over the timed steps (the first `--warmup` steps of a process are left out).
- tokens/s: real (non-padding) tokens of the [chosen; rejected] rows per median step.
- MFU: model FLOPs per token x tokens/s / the device's dense bf16 peak (`--peak-tflops`, 989 for H100/H200):
  6 N per token for the policy (forward and backward) and 2 N for the reference forward, N = parameters without
  the input embedding; attention-score FLOPs are left out. Only for full fine-tuning (LoRA's backward is cheaper).
  Per device: the tokens/s of all ranks divided by the ranks.
- memory per rank (every run): the host's peak resident set (`ru_maxrss`) and `torch.cuda.max_memory_allocated`,
  once the models are loaded and sharded (training starts) and over the whole fit.
- qlora against fsdp-qlora (same global batches): the largest per-step difference of rank 0's training loss, and
  whether every FSDP-QLoRA loss is finite and not 0 (the FSDP + 4-bit trap gives 0 or NaN).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

RUNS: dict[str, list[str]] = {
    # full fine-tune with bf16 weights and optimizer state, bf16 frozen reference
    "bf16-full": ["--model.policy_dtype=bfloat16", "--model.reference_dtype=bfloat16", "--trainer.precision=bf16-true"],
    # the shipped QLoRA preset: NF4 base computing in bf16, fp32 LoRA r16, bf16 autocast; reference = adapters off
    "qlora": ["--config", str(REPO / "configs" / "presets" / "qlora.yaml")],
    # FSDP2 over every device: fp32 master weights, bf16 compute, fp32 reduce; reference sharded, bf16
    "fsdp2": ["--trainer.strategy=fsdp2"],
    # QLoRA sharded by FSDP2: the 4-bit base held as bf16 (the gather dtype), adapters sharded; reference = adapters off
    "fsdp-qlora": ["--config", str(REPO / "configs" / "presets" / "qlora.yaml"), "--trainer.strategy=fsdp2"],
    # HSDP: 2 replica groups, each sharding over half the devices
    "hsdp": ["--trainer.strategy=lit_daa.strategies.FSDP2Strategy", "--trainer.strategy.replicas=2"],
    # loading a large model under FSDP2: bf16 policy and reference; no checkpoint or export written (disk and time)
    "fsdp2-load": [
        "--trainer.strategy=fsdp2", "--model.policy_dtype=bfloat16", "--model.reference_dtype=bfloat16",
        "--checkpoint.save_last=false", "--export.enabled=false",
    ],
}  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", default="2048x16x8", help="HIDDENxLAYERSxHEADS of the random GPT-NeoX (Pythia-1B)")
    p.add_argument("--vocab", type=int, default=50304, help="vocabulary size of embedding and LM head")
    p.add_argument("--runs", default="qlora,bf16-full", help=f"comma-separated, of {list(RUNS)}")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    p.add_argument("--devices", type=int, default=1, help="processes (GPUs) per run")
    p.add_argument("--steps", type=int, default=20, help="optimizer steps per run")
    p.add_argument("--warmup", type=int, default=5, help="first steps of each process left out of the timing")
    p.add_argument("--batch-size", type=int, default=8, help="pairs per step per device")
    p.add_argument("--prompt-words", type=int, default=200, help="words per prompt (TL;DR posts are ~150-250)")
    p.add_argument("--response-words", default="20,60", help="MIN,MAX words per response")
    p.add_argument("--resume", action="store_true", help="kill each run half-way (SIGKILL), resume it, export it")
    p.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak of the device (TFLOP/s)")
    p.add_argument("--workdir", default="runs/fit_benchmark")
    p.add_argument("--timeout", type=int, default=240, help="seconds per fit process")
    p.add_argument("--out", default=None, help="append the markdown section here")
    return p.parse_args(argv)


def build_model(args: argparse.Namespace, workdir: Path) -> Path:
    import torch

    from lit_daa.synthetic.model import TinyNeoX

    hidden, layers, heads = (int(x) for x in args.shape.split("x"))
    folder = workdir / f"neox-{args.shape}-v{args.vocab}"
    if not (folder / "config.json").exists():
        t0 = time.perf_counter()
        # random init on the GPU where there is one: minutes faster for billions of parameters
        with torch.device("cuda" if args.device == "cuda" else "cpu"):
            TinyNeoX(hidden, layers, heads, max_positions=1024, vocab_size=args.vocab, dtype=torch.bfloat16).build(
                folder
            )
        print(f"built {folder} in {time.perf_counter() - t0:.0f} s", flush=True)
    return folder


def write_pairs(args: argparse.Namespace, workdir: Path) -> tuple[Path, Path]:
    """Random-word pairs of TL;DR shape over the synthetic vocabulary (one token per word)."""
    from lit_daa.synthetic.world import vocabulary

    words = [w for w in vocabulary() if w.isalpha()]
    rng = random.Random(0)
    lo, hi = (int(x) for x in args.response_words.split(","))

    def text(n: int) -> str:
        return " ".join(rng.choice(words) for _ in range(n))

    paths = []
    for name, n in (("train", args.batch_size * args.devices * (args.steps + 2)), ("val", 8)):
        path = workdir / f"{name}-{args.prompt_words}w.jsonl"
        rows = [
            {
                "prompt": text(args.prompt_words),
                "chosen": text(rng.randint(lo, hi)),
                "rejected": text(rng.randint(lo, hi)),
            }
            for _ in range(n)
        ]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        paths.append(path)
    return paths[0], paths[1]


def fit(args: argparse.Namespace, name: str, model: Path, data: tuple[Path, Path], root: Path, *extra: str) -> Any:
    probe = root / f"probe-{len(list(root.glob('probe-*.json')))}.json" if root.exists() else root / "probe-0.json"
    root.mkdir(parents=True, exist_ok=True)
    callback = {"class_path": "fit_probe.FitProbe", "init_args": {"out": str(probe)}}
    kill = [a for a in extra if a.startswith("--kill_at=")]
    if kill:
        callback["init_args"]["kill_at"] = int(kill[0].split("=")[1])
        extra = tuple(a for a in extra if a not in kill)
    command = [
        sys.executable, "-m", "lit_daa.cli", "fit",
        "--config", str(REPO / "configs" / "quickstart.yaml"),
        "--data.source=null", f"--data.train_path={data[0]}", f"--data.val_path={data[1]}",
        f"--model.policy={model}",
        f"--trainer.accelerator={'gpu' if args.device == 'cuda' else 'cpu'}", f"--trainer.devices={args.devices}",
        f"--trainer.default_root_dir={root}", "--trainer.logger=false", "--trainer.enable_progress_bar=false",
        f"--trainer.max_steps={args.steps}", "--trainer.limit_val_batches=0", "--trainer.num_sanity_val_steps=0",
        "--trainer.val_check_interval=1.0", f"--data.batch_size={args.batch_size}",
        f"--data.max_length={args.prompt_words + 80}", f"--data.max_prompt_length={args.prompt_words + 8}",
        f"--checkpoint.every_n_train_steps={max(1, args.steps // 2)}", "--model.optimizer.init_args.lr=1e-5",
        "--trainer.callbacks+=" + json.dumps(callback),
        *RUNS[name], *extra,
    ]  # fmt: skip
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "benchmarks"), str(REPO)]),
        "PYTHONWARNINGS": "ignore",
    }
    t0 = time.perf_counter()
    with (root / "fit.log").open("a") as log:
        code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=args.timeout)
    wall = time.perf_counter() - t0
    result = json.loads(probe.read_text()) if probe.exists() else None
    print(f"[{name}] {' '.join(extra) or 'fit'}: exit {code} after {wall:.0f} s", flush=True)
    return code, result


def summary(args: argparse.Namespace, result: dict[str, Any]) -> dict[str, Any]:
    steps = result["step_s"][args.warmup :] or result["step_s"]
    tokens = result["tokens"][args.warmup :] or result["tokens"]
    median = statistics.median(steps)
    tokens_s = statistics.fmean(tokens) / median
    hidden = int(args.shape.split("x")[0])
    n = result["policy_parameters"] - args.vocab * hidden  # without the input embedding
    full = result["trainable_parameters"] >= 0.9 * result["policy_parameters"]
    per_device = args.peak_tflops * 1e12 * result["world_size"]
    mfu = 8 * n * tokens_s / per_device if full and args.device == "cuda" else None
    return {"steps_s": 1 / median, "tokens_s": tokens_s, "mfu": mfu, "timed": len(steps), **result}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = (REPO / args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(REPO))
    model, data = build_model(args, workdir), write_pairs(args, workdir)
    rows, notes, ok = [], [], True
    for name in args.runs.split(","):
        root = workdir / name
        if root.exists():
            import shutil

            shutil.rmtree(root)
        if args.resume:
            half = max(2, args.steps // 2)
            code, _ = fit(args, name, model, data, root, f"--kill_at={half + 1}")
            notes.append(f"{name}: killed with SIGKILL after step {half + 1} (exit {code}, checkpoint at {half})")
            code, result = fit(args, name, model, data, root, "--ckpt_path=last")
        else:
            code, result = fit(args, name, model, data, root)
        if code != 0 or result is None:
            ok = False
            print((root / "fit.log").read_text(errors="replace")[-3000:])
            rows.append((name, None))
            continue
        if args.resume or name == "fsdp2":
            notes.append(
                f"{name}: resumed at step {result['first_step'] - 1}, ended at {args.steps}; " + check_export(root)
            )
        notes.append(memory_note(name, result))
        rows.append((name, summary(args, result)))
    text = markdown(args, rows, notes)
    print(text)
    if args.out:
        with open(args.out, "a") as f:
            f.write(text + "\n")
    return 0 if ok else 1


def memory_note(name: str, result: dict[str, Any]) -> str:
    """Each rank's peak host RSS and device memory, once loaded and over the fit (GiB)."""
    ranks = result.get("memory_per_rank") or []

    def gib(key: str) -> str:
        return "[" + ", ".join(f"{r[key] / 1024:,.2f}" for r in ranks) + "]"

    return (
        f"{name}: per rank (GiB), peak host RSS (ru_maxrss) once loaded {gib('loaded_host')}, over the fit "
        f"{gib('peak_host')}; peak device memory (max_memory_allocated) once loaded {gib('loaded_device')}, over the "
        f"fit {gib('peak_device')}"
    )


def equivalence_note(done: dict[str, dict]) -> list[str]:
    """qlora against fsdp-qlora on the same global batches: rank 0's per-step training loss."""
    if "qlora" not in done or "fsdp-qlora" not in done:
        return []
    a, b = done["qlora"]["losses"], done["fsdp-qlora"]["losses"]
    if len(a) != len(b) or not a:
        return [f"qlora and fsdp-qlora ran {len(a)} and {len(b)} steps: not compared"]
    worst = max(abs(x - y) for x, y in zip(a, b, strict=True))
    sound = all(math.isfinite(x) and x != 0 for x in b)
    return [
        f"fsdp-qlora against qlora (same batches): largest per-step training-loss difference {worst:.2e} "
        f"(bf16 compute; the same 4-bit weights); every fsdp-qlora loss finite and not 0: {sound} "
        f"(first {b[0]:.6f}, last {b[-1]:.6f})"
    ]


def check_export(root: Path) -> str:
    from transformers import AutoModelForCausalLM

    folder = root / "hf_policy"
    try:
        model = AutoModelForCausalLM.from_pretrained(folder)
    except (OSError, ValueError) as err:
        return f"export {folder} does NOT load ({err})"
    size = sum(p.numel() for p in model.parameters()) / 1e6
    return f"export {folder.name} loads with from_pretrained ({size:,.2f} M parameters)"


def markdown(args: argparse.Namespace, rows: list[tuple[str, dict | None]], notes: list[str]) -> str:
    import torch

    device = next((r["device"] for _, r in rows if r), "?")
    lines = [
        f"## {time.strftime('%Y-%m-%d %H:%M')} — lit-daa fit — {device}",
        "",
        f"Command: `python benchmarks/fit_benchmark.py {' '.join(sys.argv[1:])}`",
        "",
        f"- random GPT-NeoX {args.shape} (hidden x layers x heads), vocabulary {args.vocab}; torch {torch.__version__}",
        f"- {args.batch_size} pairs per step per device on {args.devices} device(s); prompts of {args.prompt_words} "
        f"words, responses of {args.response_words} words (one token each); {args.steps} steps, the first "
        f"{args.warmup} of each process untimed",
        "",
        "| run | steps/s | tokens/s | peak memory | MFU | parameters (trainable) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows:
        if r is None:
            lines.append(f"| {name} | failed | | | | |")
            continue
        mem = f"{r['peak_memory_mib']:,.0f} MiB" if r["peak_memory_mib"] is not None else "n/a (CPU)"
        mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "—"
        params = f"{r['policy_parameters'] / 1e6:,.2f} M ({r['trainable_parameters'] / 1e6:,.2f} M)"
        lines.append(f"| {name} | {r['steps_s']:.2f} | {r['tokens_s']:,.0f} | {mem} | {mfu} | {params} |")
    lines.append("")
    done = dict((n, r) for n, r in rows if r)
    if "qlora" in done and "bf16-full" in done:
        q, f = done["qlora"], done["bf16-full"]
        ratio = f"{q['steps_s'] / f['steps_s']:.2f}x the steps/s"
        if q["peak_memory_mib"] and f["peak_memory_mib"]:
            ratio += f", {q['peak_memory_mib'] / f['peak_memory_mib']:.2f}x the peak memory"
        lines.append(f"- QLoRA / bf16 full fine-tune: {ratio}")
    for name, r in done.items():
        if r["mfu"] is not None:
            verdict = "met" if r["mfu"] >= 0.35 else "NOT met"
            lines.append(
                f"- MFU of {name}: {100 * r['mfu']:.1f}% per device = (6 N policy forward+backward + 2 N reference "
                f"forward) x tokens/s / {args.peak_tflops:g} TFLOP/s dense bf16, N = "
                f"{(r['policy_parameters'] - args.vocab * int(args.shape.split('x')[0])) / 1e6:,.0f} M non-embedding "
                f"parameters; goal >= 35%: {verdict}"
            )
    lines += [f"- {note}" for note in equivalence_note(done) + notes]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
