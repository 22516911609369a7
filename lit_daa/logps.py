"""Sequence log-probabilities of responses under a causal LM, in float32, with the LM head on scored positions only.

`batch_logps` takes a scoring batch (`lit_daa.layouts`): whatever the layout, the model's hidden states are
gathered at the K positions whose logits predict a response token *before* the vocabulary projection (a forward
pre-hook on the model's output embedding), so prompt and padding positions never reach it. The default head,
`ChunkedHead`, then computes log-probs a chunk of rows at a time with its own backward (`lit_daa.chunked_head`),
so the K x V logits are never held; `LogitsHead` (any head: LoRA, softcapping) lets the model build the K x V
logits and turns them into log-probs in float32 a chunk of rows at a time. Both are summed per sequence.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from lit_daa.chunked_head import chunked_token_scores
from lit_daa.layouts.masks import attention_inputs


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


def _forward(model: nn.Module, batch: dict[str, Tensor]) -> Any:
    """The model's forward on a scoring batch: ids, positions, and the layout's attention inputs."""
    inputs = attention_inputs(model, batch)
    return model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False, **inputs)


class LogitsHead:
    """The model's own head builds the (K, V) logits of the scored positions, which autograd keeps for the
    backward (with their float32 upcasts); `token_scores` reduces them. Works with any head (LoRA, softcapping)."""

    def scores(self, model: nn.Module, batch: dict[str, Tensor], collision: bool = False) -> TokenScores:
        with head_on_positions(model, batch["target_index"]):
            logits = _forward(model, batch).logits
        flat = logits.reshape(-1, logits.shape[-1])
        return TokenScores(*token_scores(flat, batch["target_ids"], collision=collision))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class ChunkedHead(LogitsHead):
    """The head's log-probs chunk by chunk (`lit_daa.chunked_head`): the (K, V) logits are never held, and the
    backward recomputes each chunk's. Gradients equal `LogitsHead`'s to float rounding.

    The head module still runs inside the model's forward (on zero rows), so FSDP2 has gathered its weight when
    the chunked function reads it, and the result is the model's output, on which FSDP2 hangs its backward hooks.
    A head that is not a plain `nn.Linear` (a LoRA-adapted or quantized one) and a model that transforms the
    head's output (e.g. Gemma-2's logit softcapping) are scored by `LogitsHead` instead.

    Args:
        chunk_rows: rows per chunk (default: about 64 MiB of float32 logits per chunk).
    """

    def __init__(self, chunk_rows: int | None = None) -> None:
        self.chunk_rows = chunk_rows
        self._transforming: weakref.WeakSet[nn.Module] = weakref.WeakSet()  # models seen to transform the head

    def scores(self, model: nn.Module, batch: dict[str, Tensor], collision: bool = False) -> TokenScores:
        head = output_head(model)
        if type(head) is not nn.Linear or model in self._transforming:
            return super().scores(model, batch, collision)
        targets = batch["target_ids"]
        with chunked_head_on_positions(head, batch["target_index"], targets, collision, self.chunk_rows) as result:
            out = _forward(model, batch).logits
        if result.output is None or out is not result.output:
            # the model changed what its head returned (scaled or capped logits): score it with the whole logits
            self._transforming.add(model)
            return super().scores(model, batch, collision)
        return TokenScores(out[:, 0], out[:, 1] if collision else None)


@dataclass
class HeadResult:
    """What the chunked head's hooks returned as the head's output ((K, 1) or (K, 2) float32), once it ran."""

    output: Tensor | None = None


@contextmanager
def chunked_head_on_positions(
    head: nn.Module, flat_positions: Tensor, targets: Tensor, collision: bool, chunk_rows: int | None = None
) -> Iterator[HeadResult]:
    """While active, the linear `head` returns [log p(target), log collision] of the hidden states at
    `flat_positions` (K,) of the (R * S) grid instead of logits (computed by `chunked_token_scores`).

    A pre-hook takes the selected hidden states and hands the head zero rows; a forward hook replaces the head's
    (0, V) output. Both run inside the model's own forward, where FSDP2 has gathered the head's weight.
    """
    result = HeadResult()
    selected: list[Tensor] = []

    def select(module: nn.Module, args: tuple) -> tuple:
        flat = args[0].reshape(-1, args[0].shape[-1])
        selected.append(flat.index_select(0, flat_positions))
        return (flat[:0], *args[1:])

    def replace(module: nn.Module, args: tuple, output: Tensor) -> Tensor:
        logps, collisions = chunked_token_scores(
            selected.pop(), module.weight, module.bias, targets, collision, chunk_rows
        )
        result.output = torch.stack([logps, collisions], dim=-1) if collisions is not None else logps[:, None]
        return result.output

    handles = [head.register_forward_pre_hook(select), head.register_forward_hook(replace)]
    try:
        yield result
    finally:
        for handle in handles:
            handle.remove()


# The head `batch_token_scores` uses unless told otherwise (measured in benchmarks/RESULTS.md, "The head, chunked").
DEFAULT_HEAD: LogitsHead = ChunkedHead()


def batch_token_scores(
    model: nn.Module, batch: dict[str, Tensor], collision: bool = False, head: LogitsHead | None = None
) -> TokenScores:
    """The model's `TokenScores` on a scoring batch (one forward; the LM head on scored positions only).

    `collision` also computes log sum_v p(v)^2 per token (only objectives that read it, e.g. WPO, ask).
    `head` picks how the head's log-probs are computed (default `DEFAULT_HEAD`).
    """
    return (head or DEFAULT_HEAD).scores(model, batch, collision)


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
