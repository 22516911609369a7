"""Sequence log-probabilities of responses under a causal LM, in float32, without full-vocabulary copies."""

from __future__ import annotations

from collections.abc import Sequence

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


def right_pad(
    rows: Sequence[tuple[Sequence[int], Sequence[int]]], pad_token_id: int = 0
) -> tuple[Tensor, Tensor, Tensor]:
    """The inputs of `response_logps` for (prompt ids, response ids) rows, padded on the right.

    Returns:
        input_ids: (N, T) prompt + response, `pad_token_id` after the end (never attended to nor scored).
        attention_mask: (N, T) long, 1 on real tokens.
        response_mask: (N, T) bool, True on response tokens.
    """
    width = max(len(p) + len(r) for p, r in rows)
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    response_mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, (prompt, response) in enumerate(rows):
        end = len(prompt) + len(response)
        input_ids[i, :end] = torch.tensor([*prompt, *response], dtype=torch.long)
        attention_mask[i, :end] = 1
        response_mask[i, len(prompt) : end] = True
    return input_ids, attention_mask, response_mask


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
