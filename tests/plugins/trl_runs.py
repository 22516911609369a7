"""What the TRL-parity tests share: the trainer options of a CPU run on the tiny model, a nudge that moves one model
away from the other, and lit-daa's log-probs of the rows of a batch TRL built."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lit_daa.logps import response_logps

# TRL trainer options of a deterministic CPU run of one batch: fp32, no dropout, no precomputed reference, no logging
CPU_ARGS = {
    "max_length": 128,
    "precompute_ref_log_probs": False,
    "disable_dropout": True,
    "use_cpu": True,
    "report_to": "none",
    "bf16": False,
    "dataloader_num_workers": 0,
}


@torch.no_grad()
def nudge(model: nn.Module, scale: float = 0.05) -> nn.Module:
    """Add Gaussian noise of standard deviation `scale` to every weight (seeded by the caller), so the policy and
    its reference differ and log-ratios are not all zero."""
    for p in model.parameters():
        p.add_(scale * torch.randn_like(p))
    return model


@torch.no_grad()
def batch_logps(policy: nn.Module, reference: nn.Module, batch: dict, prefix: str = "") -> tuple[Tensor, ...]:
    """(policy sums, completion token counts, reference sums), each (N,), of the rows `{prefix}input_ids`,
    `{prefix}attention_mask`, `{prefix}completion_mask` of a TRL batch, by lit-daa's `response_logps`."""
    rows = (batch[f"{prefix}input_ids"], batch[f"{prefix}attention_mask"], batch[f"{prefix}completion_mask"])
    sums, counts = response_logps(policy, *rows)
    ref, _ = response_logps(reference, *rows)
    return sums, counts, ref
