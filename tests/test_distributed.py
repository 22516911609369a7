"""Two CPU processes over gloo through the real CLI: FSDP2 (policy and reference sharded) and DDP.

Checked against independent computations: a 1-process run on the same global batch (FSDP2), an uninterrupted run
(resume after SIGKILL), `from_pretrained` (the gathered export).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
FP32_FSDP2 = [
    "--trainer.strategy=lit_daa.strategies.FSDP2Strategy",
    "--trainer.strategy.param_dtype=float32",
    "--trainer.strategy.reference_param_dtype=float32",
]


def fit(root: Path, *extra: str, devices: int = 1, timeout: int = 300) -> subprocess.CompletedProcess:
    """`lit-daa fit` on 96 quickstart pairs (global batch 8 = devices x per-device batch), as a user runs it."""
    command = [
        sys.executable,
        "-m",
        "lit_daa.cli",
        "fit",
        "--config",
        str(ROOT / "configs" / "quickstart.yaml"),
        "--trainer.accelerator=cpu",
        f"--trainer.devices={devices}",
        f"--trainer.default_root_dir={root}",
        f"--trainer.logger.init_args.save_dir={root}",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--data.source.init_args.num_train=96",
        "--data.source.init_args.num_val=30",  # not a multiple of 2 x batch: the padded eval rows must not count
        f"--data.batch_size={8 // devices}",
        "--data.eval_batch_size=8",
        *extra,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "tests")}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)


def scalars(root: Path, tag: str) -> dict[int, float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(root / "tensorboard"))
    events.Reload()
    return {e.step: e.value for e in events.Scalars(tag)}


def weights(root: Path) -> dict[str, torch.Tensor]:
    return load_file(root / "hf_policy" / "model.safetensors")


def callback(class_path: str, **init_args: object) -> str:
    """A `--trainer.callbacks+=` option adding one of tests/plugins' callbacks."""
    return "--trainer.callbacks+=" + json.dumps({"class_path": class_path, "init_args": init_args})


def kill_at(step: int) -> str:
    return callback("plugins.probes.KillAtStep", step=step)


def test_fsdp2_shards_both_models_and_matches_one_process(tmp_path: Path) -> None:
    steps = ["--trainer.max_steps=6", "--trainer.val_check_interval=3"]
    probe = callback("plugins.probes.ShardProbe", out_dir=str(tmp_path / "probe"))
    two = fit(tmp_path / "two", *FP32_FSDP2, *steps, probe, devices=2)
    assert two.returncode == 0, two.stderr[-3000:]
    one = fit(tmp_path / "one", *steps)
    assert one.returncode == 0, one.stderr[-3000:]

    for rank in (0, 1):
        info = json.loads((tmp_path / "probe" / f"rank{rank}.json").read_text())
        for name in ("policy", "reference"):
            held = info[name]
            # every block plus the root is an FSDP unit, and each rank keeps about half of every weight
            assert held["root_is_fsdp"] and held["all_dtensor"] and held["fsdp_units"] == 3, (name, held)
            assert held["local_numel"] <= held["full_numel"] // 2 + 64, (name, held)
        assert info["reference"]["trainable"] == 0 and info["policy"]["trainable"] > 0

    # validation metrics are exact over ranks (30 pairs, not 32 with padding) and equal the 1-process run's
    for tag in ("val/loss", "val/rewards/accuracies", "val/logps/chosen"):
        a, b = scalars(tmp_path / "one", tag), scalars(tmp_path / "two", tag)
        assert a.keys() == b.keys() and len(a) == 2
        for step in a:
            assert abs(a[step] - b[step]) < 1e-5 * max(1.0, abs(a[step])), (tag, step, a[step], b[step])
    w1, w2 = weights(tmp_path / "one"), weights(tmp_path / "two")
    assert w1.keys() == w2.keys()
    for key in w1:
        assert torch.allclose(w1[key], w2[key], atol=1e-5, rtol=0), key

    # the export was gathered from the shards into a plain model that loads without lit-daa
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tmp_path / "two" / "hf_policy")
    assert sum(p.numel() for p in model.parameters()) == info["policy"]["full_numel"]


@pytest.mark.slow
@pytest.mark.parametrize("strategy", [FP32_FSDP2, ["--trainer.strategy=ddp"]], ids=["fsdp2", "ddp"])
def test_two_process_resume_after_sigkill_is_exact(tmp_path: Path, strategy: list[str]) -> None:
    run = ["--trainer.max_steps=10", "--trainer.val_check_interval=5", "--checkpoint.every_n_train_steps=4"]
    straight = fit(tmp_path / "a", *strategy, *run, devices=2)
    assert straight.returncode == 0, straight.stderr[-3000:]

    killed = fit(tmp_path / "b", *strategy, *run, kill_at(6), devices=2)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert (tmp_path / "b" / "checkpoints" / "last.ckpt").exists()
    assert not (tmp_path / "b" / "hf_policy").exists()

    if "ddp" in strategy[0]:
        # the same checkpoint on one device would train another order of pairs: refused in one sentence
        other = fit(tmp_path / "b", *strategy[:0], *run, "--ckpt_path=last", devices=1)
        assert other.returncode == 2
        assert "resume with the same data, data.batch_size, data.seed, data.bucket_batches and devices" in other.stderr
        assert "Traceback" not in other.stderr

    resumed = fit(tmp_path / "b", *strategy, *run, "--ckpt_path=last", devices=2)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "global step: 10" in resumed.stdout and "global step: 10" in straight.stdout
    a, b = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs after resuming from step 4"
    assert scalars(tmp_path / "a", "val/loss")[9] == scalars(tmp_path / "b", "val/loss")[9]


@pytest.mark.slow
def test_hsdp_two_nodes_of_two_matches_one_process_and_resumes_exactly(tmp_path: Path) -> None:
    hsdp = [*FP32_FSDP2, "--trainer.strategy.replicas=2"]  # 4 ranks: 2 "nodes" of 2, sharded within, replicated across
    run = ["--trainer.max_steps=6", "--trainer.val_check_interval=3", "--checkpoint.every_n_train_steps=2"]
    probe = callback("plugins.probes.ShardProbe", out_dir=str(tmp_path / "probe"))
    four = fit(tmp_path / "four", *hsdp, *run, probe, devices=4, timeout=600)
    assert four.returncode == 0, four.stderr[-3000:]
    for rank in range(4):
        held = json.loads((tmp_path / "probe" / f"rank{rank}.json").read_text())["policy"]
        assert held["placements"] == ["Replicate", "Shard"], held
        # a shard group is 2 ranks: each rank keeps about half of every weight, not a quarter
        assert held["full_numel"] // 2 - 64 <= held["local_numel"] <= held["full_numel"] // 2 + 64, held
    one = fit(tmp_path / "one", *run)
    assert one.returncode == 0, one.stderr[-3000:]
    a, b = scalars(tmp_path / "one", "val/loss"), scalars(tmp_path / "four", "val/loss")
    assert a.keys() == b.keys() and all(abs(a[s] - b[s]) < 1e-5 * max(1.0, abs(a[s])) for s in a), (a, b)
    w1, w4 = weights(tmp_path / "one"), weights(tmp_path / "four")
    for key in w1:
        assert torch.allclose(w1[key], w4[key], atol=1e-5, rtol=0), key

    killed = fit(tmp_path / "b", *hsdp, *run, kill_at(3), devices=4, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    resumed = fit(tmp_path / "b", *hsdp, *run, "--ckpt_path=last", devices=4, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    wb = weights(tmp_path / "b")
    for key in w4:
        assert torch.equal(w4[key], wb[key]), f"{key} differs after resuming HSDP from step 2"


def test_ddp_fits_on_two_processes(tmp_path: Path) -> None:
    two = fit(
        tmp_path / "ddp", "--trainer.strategy=ddp", "--trainer.max_steps=4", "--trainer.val_check_interval=2", devices=2
    )
    assert two.returncode == 0, two.stderr[-3000:]
    assert "global step: 4" in two.stdout
    one = fit(tmp_path / "one", "--trainer.max_steps=4", "--trainer.val_check_interval=2")
    assert one.returncode == 0, one.stderr[-3000:]
    a, b = scalars(tmp_path / "one", "val/loss"), scalars(tmp_path / "ddp", "val/loss")
    assert a.keys() == b.keys() and all(abs(a[s] - b[s]) < 1e-5 for s in a)


def test_lora_under_fsdp2_exports_merged_and_adapter_from_the_shards(tmp_path: Path) -> None:
    run = fit(
        tmp_path / "lora",
        *FP32_FSDP2,
        "--config",
        str(ROOT / "configs" / "presets" / "lora.yaml"),
        "--model.activation_checkpointing=true",
        "--model.optimizer.init_args.lr=1e-2",  # move the adapters well away from zero in 6 steps
        "--trainer.max_steps=6",
        "--trainer.val_check_interval=3",
        callback("lit_daa.checkpoints.IntraEpochCheckpoints", fractions=[0.25]),
        devices=2,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from lit_daa.models import resolve_model
    from lit_daa.reference import is_peft

    ids = torch.tensor([[3, 10, 4, 30, 31, 2]])

    def logits(model: torch.nn.Module) -> torch.Tensor:
        with torch.no_grad():
            return model.eval()(input_ids=ids).logits

    base = AutoModelForCausalLM.from_pretrained(resolve_model("embedded:neox-tiny"))
    before = logits(base)
    for folder in (tmp_path / "lora" / "hf_policy", tmp_path / "lora" / "intra_epoch" / "examples_00000024"):
        merged = AutoModelForCausalLM.from_pretrained(folder)
        assert not is_peft(merged)
        adapted = PeftModel.from_pretrained(
            AutoModelForCausalLM.from_pretrained(resolve_model("embedded:neox-tiny")), f"{folder}-adapter"
        )
        # merged weights compute what base + adapter compute, and the adapter did move the policy
        assert torch.allclose(logits(merged), logits(adapted), atol=1e-5)
        assert not torch.allclose(logits(merged), before, atol=1e-3)


def two_nodes(launcher: str, root: Path, *extra: str, timeout: int = 600) -> list[subprocess.CompletedProcess]:
    """`lit-daa fit` as two one-process "nodes" on loopback, launched as a cluster launches it on each node: by
    torchrun (`--nnodes 2 --node-rank R`), or by srun (here: the variables srun sets for 2 tasks, one per node)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "tests")}
    nodes = []
    for node in (0, 1):
        if launcher == "torchrun":
            start = [str(Path(sys.executable).with_name("torchrun")), "--nnodes=2", f"--node-rank={node}"]
            start += ["--nproc-per-node=1", "--master-addr=127.0.0.1", f"--master-port={port}", "-m"]
            node_env = env
        else:
            start = [sys.executable, "-m"]
            node_env = {
                **env,
                **{"SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "1", "SLURM_NNODES": "2", "SLURM_JOB_ID": "4242"},
                **{"SLURM_JOB_NAME": "lit-daa", "SLURM_PROCID": str(node), "SLURM_LOCALID": "0"},
                **{"SLURM_NODEID": str(node), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)},
            }
        command = [
            *start,
            "lit_daa.cli",
            "fit",
            "--config",
            str(ROOT / "configs" / "quickstart.yaml"),
            "--trainer.accelerator=cpu",
            "--trainer.num_nodes=2",
            "--trainer.devices=1",
            f"--trainer.default_root_dir={root}",
            "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false",
            "--data.source.init_args.num_train=96",
            "--data.source.init_args.num_val=30",
            "--data.batch_size=4",
            "--data.eval_batch_size=8",
            *extra,
        ]
        nodes.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=node_env))
    done = []
    for process in nodes:
        out, err = process.communicate(timeout=timeout)
        done.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return done


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["torchrun", "slurm"])
def test_two_nodes_train_checkpoint_resume_and_export_like_one_process(tmp_path: Path, launcher: str) -> None:
    sharded = [*FP32_FSDP2, "--trainer.val_check_interval=2"]  # each node holds half of every weight
    first = two_nodes(launcher, tmp_path / "nodes", *sharded, "--trainer.max_steps=2")
    assert all(p.returncode == 0 for p in first), [p.stderr[-2000:] for p in first]
    assert (tmp_path / "nodes" / "checkpoints" / "last.ckpt" / ".metadata").is_file()  # sharded, both nodes wrote
    # the same command with more steps resumes from the sharded checkpoint and continues as one longer run would
    more = two_nodes(launcher, tmp_path / "nodes", *sharded, "--trainer.max_steps=4", "--ckpt_path=last", "--verbose")
    assert all(p.returncode == 0 for p in more), [p.stderr[-2000:] for p in more]
    assert "global step: 4" in more[0].stdout
    last = tmp_path / "nodes" / "checkpoints" / "last.ckpt"
    assert f"Restoring states from the checkpoint path at {last}" in more[0].stdout + more[0].stderr  # a resume
    one = fit(tmp_path / "one", "--trainer.max_steps=4", "--trainer.val_check_interval=2")
    assert one.returncode == 0, one.stderr[-3000:]
    w1, w2 = weights(tmp_path / "one"), weights(tmp_path / "nodes")  # the export, gathered from both nodes
    assert w1.keys() == w2.keys()
    for key in w1:
        assert torch.allclose(w1[key], w2[key], atol=1e-5, rtol=0), key
