"""Sequence log-probabilities of responses under a causal LM, in float32, without full-vocabulary copies."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def token_logps(logits: Tensor, targets: Tensor, chunk_rows: int = 8) -> Tensor:
    """log p(target) per position, computed in float32 a few rows at a time.

    Args:
        logits: (N, K, V) in any float dtype.
        targets: (N, K) token ids.
        chunk_rows: rows upcast to float32 at once, which bounds the extra memory to chunk_rows * K * V floats.

    Returns:
        (N, K) float32 log-probabilities.
    """
    out = []
    for start in range(0, logits.shape[0], chunk_rows):
        rows = logits[start : start + chunk_rows].float()
        picked = rows.gather(-1, targets[start : start + chunk_rows].unsqueeze(-1)).squeeze(-1)
        out.append(picked - torch.logsumexp(rows, dim=-1))
    return torch.cat(out, dim=0)


def response_logps(
    model: nn.Module, input_ids: Tensor, attention_mask: Tensor, response_mask: Tensor
) -> tuple[Tensor, Tensor]:
    """Sum of log p(token) over response tokens of each row, and the response token counts.

    The token at position t is predicted by the logits at t - 1. Logits are only produced for positions from the
    earliest response token of the batch on (`logits_to_keep`), so the prompt part shared by all rows never
    reaches the vocabulary projection.

    Args:
        model: a Hugging Face causal LM (or a peft wrapper around one).
        input_ids: (N, T) prompt + response, right-padded.
        attention_mask: (N, T) 1 on real tokens.
        response_mask: (N, T) 1 on response tokens (EOS included), 0 on prompt and padding.

    Returns:
        sums: (N,) float32 sum over response tokens of log p(token | prefix).
        counts: (N,) float32 number of response tokens.
    """
    mask = response_mask[:, 1:].bool()
    first = int(response_mask.float().argmax(dim=1).min().clamp_min(1))
    keep = torch.arange(first - 1, input_ids.shape[1] - 1, device=input_ids.device)
    logits = model(input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=keep, use_cache=False).logits
    targets = input_ids[:, first:]
    per_token = token_logps(logits, targets)
    window = mask[:, first - 1 :]
    sums = (per_token * window).sum(dim=1)
    return sums, mask.sum(dim=1).float()
