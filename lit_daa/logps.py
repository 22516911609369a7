"""Sequence log-probabilities of responses under a causal LM, in float32, with the LM head on scored positions only.

`batch_logps` takes a scoring batch (`lit_daa.layouts`): whatever the layout, the model's hidden states are
gathered at the K positions whose logits predict a response token *before* the vocabulary projection (a forward
pre-hook on the model's output embedding), so prompt and padding positions never reach it; the K x V logits are
turned into log-probs in float32 a chunk of rows at a time and summed per sequence.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from lit_daa.layouts.masks import attention_mask


def token_scores(
    logits: Tensor, targets: Tensor, chunk_rows: int = 1024, collision: bool = False
) -> tuple[Tensor, Tensor | None]:
    """log p(target) per row of (K, V) logits (any float dtype), in float32 `chunk_rows` rows at a time, and, when
    `collision`, log sum_v p(v)^2 per row (the log collision probability, WPO's per-token normaliser).

    Args:
        logits: (K, V).
        targets: (K,) token ids.
        chunk_rows: rows upcast to float32 at once, which bounds the extra memory to chunk_rows * V floats.
        collision: also compute the collision term (one more log-sum-exp over the vocabulary per row).

    Returns:
        (K,) float32 log-probabilities, and (K,) float32 log collision probabilities or None.
    """
    picked_out, collision_out = [], []
    for start in range(0, logits.shape[0], chunk_rows):
        rows = logits[start : start + chunk_rows].float()
        norm = torch.logsumexp(rows, dim=-1)
        picked = rows.gather(-1, targets[start : start + chunk_rows].unsqueeze(-1)).squeeze(-1)
        picked_out.append(picked - norm)
        if collision:
            collision_out.append(torch.logsumexp(2.0 * rows, dim=-1) - 2.0 * norm)
    empty = logits.new_zeros(0, dtype=torch.float32)
    logps = torch.cat(picked_out) if picked_out else empty
    if not collision:
        return logps, None
    return logps, torch.cat(collision_out) if collision_out else empty


def token_logps(logits: Tensor, targets: Tensor, chunk_rows: int = 1024) -> Tensor:
    """(K,) float32 log p(target) per row of (K, V) logits: `token_scores` without the collision term."""
    return token_scores(logits, targets, chunk_rows)[0]


def output_head(model: nn.Module) -> nn.Module:
    """The vocabulary projection of a Hugging Face causal LM (or of a peft model's base)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.get_output_embeddings()


@contextmanager
def head_on_positions(model: nn.Module, flat_positions: Tensor) -> Iterator[None]:
    """While active, the output head sees only the hidden states at `flat_positions` (K,) of the (R * S) grid.

    The hook runs inside the model's own forward, so it also works where the head's weights are only gathered
    there (FSDP2's root unit). The model then returns (K, V) logits.
    """

    def select(module: nn.Module, args: tuple) -> tuple:
        hidden = args[0]
        return (hidden.reshape(-1, hidden.shape[-1]).index_select(0, flat_positions), *args[1:])

    handle = output_head(model).register_forward_pre_hook(select)
    try:
        yield
    finally:
        handle.remove()


@dataclass
class TokenScores:
    """Per scored token (K,) of a scoring batch: log p(token), and log sum_v p(v)^2 when asked for (float32)."""

    logps: Tensor
    collision: Tensor | None

    def sums(self, batch: dict[str, Tensor]) -> Tensor:
        """(N,) per-sequence sums of `logps`."""
        out = torch.zeros(batch["counts"].shape[0], dtype=torch.float32, device=self.logps.device)
        return out.index_add_(0, batch["target_seq"], self.logps)


def batch_token_scores(model: nn.Module, batch: dict[str, Tensor], collision: bool = False) -> TokenScores:
    """The model's `TokenScores` on a scoring batch (one forward; the LM head on scored positions only).

    `collision` also computes log sum_v p(v)^2 per token (only objectives that read it, e.g. WPO, ask).
    """
    mask = attention_mask(model, batch)
    with head_on_positions(model, batch["target_index"]):
        logits = model(
            input_ids=batch["input_ids"], attention_mask=mask, position_ids=batch["position_ids"], use_cache=False
        ).logits
    flat = logits.reshape(-1, logits.shape[-1])
    return TokenScores(*token_scores(flat, batch["target_ids"], collision=collision))


def batch_logps(model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """Sum of log p(token) over each sequence's response tokens, and the response token counts.

    Args:
        model: a Hugging Face causal LM (or a peft wrapper around one).
        batch: a scoring batch (`lit_daa.layouts.rows`): `input_ids`, `position_ids`, `attention_mask` or
            `doc_ids`/`segments`, `target_index`, `target_ids`, `target_seq`, `counts` (N,).

    Returns:
        sums: (N,) float32 sum over response tokens of log p(token | prefix).
        counts: (N,) float32 number of response tokens.
    """
    return batch_token_scores(model, batch).sums(batch), batch["counts"]


def right_pad(
    rows: Sequence[tuple[Sequence[int], Sequence[int]]], pad_token_id: int = 0
) -> tuple[Tensor, Tensor, Tensor]:
    """(prompt ids, response ids) rows, right-padded: the inputs of `response_logps`.

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
    """`batch_logps` for right-padded rows given as (N, T) ids, attention mask and response mask.

    The token at position t is predicted by the logits at t - 1 (a response token at position 0 is not scored).

    Returns:
        sums: (N,) float32; counts: (N,) float32.
    """
    n, t = input_ids.shape
    scored = response_mask.bool().clone()
    scored[:, 0] = False
    rows, cols = scored.nonzero(as_tuple=True)
    batch = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "position_ids": torch.arange(t, device=input_ids.device).expand(n, t),
        "target_index": rows * t + cols - 1,
        "target_ids": input_ids[rows, cols],
        "target_seq": rows,
        "target_pos": cols - response_mask.float().argmax(dim=1)[rows],
        "counts": scored.sum(dim=1).float(),
    }
    return batch_logps(model, batch)
