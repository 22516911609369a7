"""`SequenceKL`: the KL torchmetric that `evaluate` uses. Its value on enumerated sequences is checked in
test_eval_kl.py (within 4 standard errors of the exact KL); here: hand values and an exact merge over 2 processes."""

from __future__ import annotations

import math
import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lit_daa.metrics import SequenceKL

VALUES = torch.tensor([0.5, 1.5, -0.25, 2.0, 0.75, 3.0, -1.0, 1.25], dtype=torch.float64)


def test_hand_values() -> None:
    metric = SequenceKL()
    metric.update(VALUES[:3])
    metric.update(VALUES[3:])
    out = metric.compute()
    mean = VALUES.mean().item()
    assert out["kl"].item() == math.fsum(VALUES.tolist()) / 8 == mean
    assert math.isclose(out["kl_stderr"].item(), torch.std(VALUES, unbiased=True).item() / math.sqrt(8), rel_tol=1e-12)
    assert out["sqrt_kl"].item() == math.sqrt(mean)


def _rank(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    metric = SequenceKL()
    metric.update(VALUES[rank::2][: 3 + rank])  # uneven shares: 3 and 4 samples
    values = {k: v.item() for k, v in metric.compute().items()}  # torchmetrics sums the states over ranks
    if rank == 0:
        torch.save(values, out)
    dist.destroy_process_group()


def test_two_process_merge_is_exact(tmp_path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = str(tmp_path / "merged.pt")
    mp.spawn(_rank, args=(port, out), nprocs=2, join=True)
    merged = torch.load(out)
    shares = torch.cat([VALUES[0::2][:3], VALUES[1::2][:4]])
    single = SequenceKL()
    single.update(shares)
    expected = {k: v.item() for k, v in single.compute().items()}
    for key in expected:
        assert math.isclose(merged[key], expected[key], rel_tol=1e-12, abs_tol=1e-15), key
