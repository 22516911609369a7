"""Peak host memory per process when 2 gloo processes load a policy and its frozen reference under FSDP2.

Three runs, each in 2 fresh processes (`torch.multiprocessing` spawn, one gloo group, the real `FSDP2Strategy` and
`DAAModule.configure_model`):

- idle: imports everything, starts the Trainer and the process group, builds nothing: the per-process overhead;
- old: every rank loads both models with `from_pretrained`, then shards them (what lit-daa did before);
- new: `configure_model` as it is: rank 0 loads, the other rank builds empty models and receives its shards.

The checkpoint is saved in bf16, as hub checkpoints are, and loaded in float32 (lit-daa's default dtypes), so loading
makes real copies; a checkpoint already in the loading dtype is memory-mapped by `from_pretrained` instead, and its
pages are then the page cache, shared by the processes of a node. Each process reports its peak resident set size
(`VmHWM`); this process also samples both processes every 10 ms (`/proc/PID/smaps_rollup`): each one's peak of
anonymous memory, and the node's peak, the largest sum of both processes' PSS (shared pages counted once). "One copy"
is one model's weights in float32; policy and reference are two copies.

Usage (from the repository root):

    OMP_NUM_THREADS=1 python benchmarks/load_memory.py                 # GPT-NeoX 1024 x 24 layers, ~302M params
    python benchmarks/load_memory.py --hidden 256 --layers 4 --json out.json    # smaller; --json: machine-readable
    python benchmarks/load_memory.py --save-dtype float32          # the checkpoint memory-mapped, not copied
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODES = ("idle", "old", "new")


def worker(rank: int, port: int, mode: str, model: str, out: str) -> None:
    """One rank: build what `mode` says, then write the process's peak RSS (bytes) to `out`/<mode>-<rank>.json."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), LOCAL_RANK=str(rank), NODE_RANK="0")
    import torch
    from lightning.pytorch import Trainer

    from lit_daa.module import DAAModule
    from lit_daa.strategies import FSDP2Strategy

    torch.set_num_threads(1)
    strategy = FSDP2Strategy(param_dtype="float32", reference_param_dtype="float32")
    trainer = Trainer(accelerator="cpu", devices=2, strategy=strategy, logger=False, enable_checkpointing=False)
    module = DAAModule(policy=model)
    module.trainer = trainer
    strategy.connect(module)
    strategy.setup_environment()
    if mode == "new":
        module.configure_model()
    elif mode == "old":
        mesh, module._device_mesh = module._device_mesh, None  # no mesh: every rank loads, as before
        module.configure_model()
        strategy.sharding.shard(module.policy, module.reference.shardable(), mesh)
    if mode != "idle":
        local = sum(p.to_local().numel() * p.element_size() for p in module.policy.parameters())
        assert local < sum(p.numel() * p.element_size() for p in module.policy.parameters()), "not sharded"
    torch.distributed.barrier()
    peak = peak_rss()
    Path(out, f"{mode}-{rank}.json").write_text(json.dumps({"peak": peak}))
    torch.distributed.destroy_process_group()


def peak_rss() -> int:
    """This process's peak resident set size in bytes (VmHWM: since its exec, unlike ru_maxrss, which a spawned
    process inherits from the process it was forked from)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def run(mode: str, model: str, out: str) -> dict:
    """Start 2 ranks for `mode` and sample their memory every 10 ms until they finish: each rank's peak (VmHWM, and
    the peak of its anonymous memory), and the node's peak (the largest sum of both ranks' PSS, and of anonymous)."""
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    context = mp.start_processes(worker, args=(port, mode, model, out), nprocs=2, start_method="spawn", join=False)
    pids = context.pids()
    anon, node_pss, node_anon = [0, 0], 0, 0
    while not context.join(timeout=0.01):
        try:
            now = [rollup(pid) for pid in pids]
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
        anon = [max(a, n["Anonymous"]) for a, n in zip(anon, now, strict=True)]
        node_pss = max(node_pss, sum(n["Pss"] for n in now))
        node_anon = max(node_anon, sum(n["Anonymous"] for n in now))
    peaks = [json.loads(Path(out, f"{mode}-{rank}.json").read_text())["peak"] for rank in (0, 1)]
    return {"peaks": peaks, "anon": anon, "node": node_pss, "node_anon": node_anon}


def rollup(pid: int) -> dict[str, int]:
    """A process's Rss, Pss (shared pages divided among the processes mapping them) and Anonymous, in bytes."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        fields[name] = int(value.split()[0]) * 1024
    return fields


def build(folder: Path, hidden: int, layers: int, heads: int, dtype: str) -> int:
    """A random GPT-NeoX of this shape saved in `folder` in `dtype`; returns its bytes loaded in float32 (one copy)."""
    import torch

    from lit_daa.synthetic.model import TinyNeoX

    TinyNeoX(hidden_size=hidden, num_layers=layers, num_heads=heads, dtype=getattr(torch, dtype)).build(folder)
    from safetensors import safe_open

    total = 0
    for file in folder.glob("*.safetensors"):
        with safe_open(file, "pt") as f:
            for key in f.keys():
                sliced = f.get_slice(key)
                numel = 1
                for size in sliced.get_shape():
                    numel *= size
                total += numel * 4  # loaded in float32
    return total


def table(results: dict, copy: int, command: str) -> str:
    gb = 1024**3
    idle = max(results["idle"]["peaks"])
    idle_pss = results["idle"]["node"]
    lines = [
        f"One copy of the model: {copy / gb:.2f} GiB in float32 (policy and reference: 2 copies). Per-process overhead "
        f"(idle: imports, Trainer, process group, nothing built): peak {idle / gb:.2f} GiB. Command: `{command}`",
        "",
        "| path | rank 0 peak (VmHWM) | rank 1 peak (VmHWM) | rank 0 / rank 1 anonymous peak | rank 1 above idle | "
        "node peak (sum of PSS) | node above idle |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode in MODES:
        r = results[mode]
        lines.append(
            f"| {mode} | {r['peaks'][0] / gb:.2f} GiB | {r['peaks'][1] / gb:.2f} GiB | {r['anon'][0] / gb:.2f} / "
            f"{r['anon'][1] / gb:.2f} GiB | {(r['peaks'][1] - idle) / copy:.2f} copies | {r['node'] / gb:.2f} GiB | "
            f"{(r['node'] - idle_pss) / copy:.2f} copies |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--save-dtype", default="bfloat16", help="dtype the checkpoint is saved in (loaded in float32)")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of idle,old,new")
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        started = time.perf_counter()
        copy = build(folder, args.hidden, args.layers, args.heads, args.save_dtype)
        print(f"built {copy / 4 / 1e6:.0f}M parameters in {time.perf_counter() - started:.0f} s", flush=True)
        results = {}
        for mode in args.modes.split(","):
            results[mode] = run(mode, str(folder), tmp)
            print(mode, results[mode], flush=True)
    command = "OMP_NUM_THREADS=1 python benchmarks/load_memory.py" + "".join(
        f" --{name.replace('_', '-')} {getattr(args, name)}" for name in ("hidden", "layers", "heads", "save_dtype")
    )
    if set(MODES) <= results.keys():
        print(table(results, copy, command))
    if args.json:
        Path(args.json).write_text(json.dumps({"copy": copy, **results}))


if __name__ == "__main__":
    main()
