"""The LM head's log-probs computed a chunk of rows at a time, with a backward that recomputes each chunk.

`chunked_token_scores(hidden, weight, bias, targets)` gives log p(target) per row of hidden states (N, H) under the
vocabulary projection `weight` (V, H) (+ `bias` (V,)), and optionally log sum_v p(v)^2 (WPO's collision term),
without ever holding the (N, V) logits: the forward keeps only each row's log-sum-exp, and the backward
recomputes a chunk's logits, turns them into softmax probabilities in place, and accumulates the gradients of the
hidden states (N, H), the weight (V, H) and the bias. Peak extra memory is one chunk's float32 logits.

Logits are computed in the dtype the plain head would use (the autocast dtype when autocast is on, else the
weight's) and upcast to float32 per chunk, as `lit_daa.logps.token_scores` does for full logits; the weight
gradient is accumulated over chunks in float32.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

# logits elements per chunk: 2**24 float32 values are 64 MiB, e.g. 333 rows at a 50k vocabulary, 130 at 128k. Every
# chunk streams the whole weight and its gradient once more, so chunks must not be tiny; measured on a quiet CPU
# (benchmarks/RESULTS.md), 64 MiB chunks ran as fast as 256 MiB ones at 50k and 128k and left 20% and 12% less
# working memory.
CHUNK_ELEMENTS = 2**24


def chunk_rows_for(vocab: int, elements: int = CHUNK_ELEMENTS) -> int:
    """Rows per chunk so that a chunk's float32 logits hold about `elements` values (at least 16 rows)."""
    return max(16, elements // max(vocab, 1))


def compute_dtype(hidden: Tensor, weight: Tensor) -> torch.dtype:
    """The dtype a plain `nn.Linear` head computes in here: autocast's when autocast is on, else the inputs'."""
    device_type = hidden.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return torch.promote_types(hidden.dtype, weight.dtype)


def _chunk_logits(hidden: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """A chunk's logits upcast to float32 (float64 stays); `hidden`, `weight`, `bias` in the compute dtype."""
    with torch.autocast(hidden.device.type, enabled=False):
        logits = F.linear(hidden, weight, bias)
    return logits.to(torch.promote_types(logits.dtype, torch.float32))


class ChunkedHeadScores(torch.autograd.Function):
    """log p(target) (differentiable) and log sum_v p(v)^2 (not differentiable) per row, chunk by chunk."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        hidden: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        targets: Tensor,
        collision: bool,
        chunk_rows: int,
    ) -> tuple[Tensor, Tensor]:
        dtype = compute_dtype(hidden, weight)
        w = weight.to(dtype)
        b = None if bias is None else bias.to(dtype)
        n = hidden.shape[0]
        logps = torch.empty(n, dtype=torch.promote_types(dtype, torch.float32), device=hidden.device)
        norms = torch.empty_like(logps)
        collisions = torch.empty_like(logps) if collision else logps.new_zeros(0)
        for start in range(0, n, chunk_rows):
            end = min(start + chunk_rows, n)
            logits = _chunk_logits(hidden[start:end].to(dtype), w, b)
            norm = torch.logsumexp(logits, dim=-1)
            norms[start:end] = norm
            logps[start:end] = logits.gather(-1, targets[start:end, None]).squeeze(-1) - norm
            if collision:
                collisions[start:end] = torch.logsumexp(logits.mul_(2.0), dim=-1) - 2.0 * norm
        ctx.save_for_backward(hidden, weight, bias, targets, norms)
        ctx.chunk_rows, ctx.dtype = chunk_rows, dtype
        ctx.mark_non_differentiable(collisions)
        return logps, collisions

    @staticmethod
    def backward(ctx: Any, grad_logps: Tensor, _grad_collision: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        hidden, weight, bias, targets, norms = ctx.saved_tensors
        dtype, rows = ctx.dtype, ctx.chunk_rows
        need_hidden, need_weight, need_bias = ctx.needs_input_grad[:3]
        w = weight.to(dtype)
        b = None if bias is None else bias.to(dtype)
        grad_hidden = torch.empty_like(hidden) if need_hidden else None
        # float32 accumulators: a bf16 weight's gradient summed over many chunks would lose bits
        acc = norms.dtype
        grad_weight = torch.zeros(weight.shape, dtype=acc, device=weight.device) if need_weight else None
        grad_bias = torch.zeros(bias.shape, dtype=acc, device=bias.device) if need_bias else None
        n = hidden.shape[0]
        for start in range(0, n, rows):
            end = min(start + rows, n)
            h = hidden[start:end].to(dtype)
            g = grad_logps[start:end, None].to(norms.dtype)
            # d log p(t) / d logits = onehot(t) - softmax(logits), scaled by the incoming gradient
            probs = _chunk_logits(h, w, b).sub_(norms[start:end, None]).exp_()
            grad_logits = probs.mul_(-g).scatter_add_(-1, targets[start:end, None], g).to(dtype)
            with torch.autocast(hidden.device.type, enabled=False):
                if grad_hidden is not None:
                    grad_hidden[start:end] = (grad_logits @ w).to(hidden.dtype)
                if grad_weight is not None:
                    if dtype == acc:
                        grad_weight.addmm_(grad_logits.t(), h)
                    else:
                        grad_weight += (grad_logits.t() @ h).to(acc)
            if grad_bias is not None:
                grad_bias += grad_logits.sum(0, dtype=acc)
        grad_weight = None if grad_weight is None else grad_weight.to(weight.dtype)
        grad_bias = None if grad_bias is None else grad_bias.to(bias.dtype)
        return grad_hidden, grad_weight, grad_bias, None, None, None


def chunked_token_scores(
    hidden: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    targets: Tensor,
    collision: bool = False,
    chunk_rows: int | None = None,
) -> tuple[Tensor, Tensor | None]:
    """log p(target) per row of `hidden` under the head `weight`/`bias`, never holding all the logits.

    Args:
        hidden: (N, H) final hidden states at the scored positions.
        weight: (V, H) the vocabulary projection; `bias`: (V,) or None.
        targets: (N,) token ids.
        collision: also return log sum_v p(v)^2 per row (carries no gradient: WPO's weights are detached).
        chunk_rows: rows whose logits are computed at once (default: about 64 MiB of float32 logits).

    Returns:
        (N,) float32 log-probabilities, and (N,) float32 log collision probabilities or None (float64 when the
        head computes in float64).
    """
    rows = chunk_rows or chunk_rows_for(weight.shape[0])
    logps, collisions = ChunkedHeadScores.apply(hidden, weight, bias, targets, collision, rows)
    return logps, collisions if collision else None
