"""Segment attention: the pairs of a packed row attend within their own segments, with no (S x S) mask.

Registered with transformers' attention registry as `segments` (`--model.attn_implementation segments`). A scoring
batch of a branching layout (`SharedPrompt`, `Packed`) hands its document and segment ids to the attention
function as a `Segments` keyword argument of the model's forward, which transformers passes down to every
attention call. Per group (a prompt and its responses, `lit_daa.layouts.rows`):

- on the CPU, one causal SDPA call over the prompt and its first response, then one per further response with
  the response's queries over [prompt; response] keys (causal, aligned to the lower right), so attention costs
  only each pair's own segments and no padding;
- on CUDA, FlexAttention with a block mask built from the same ids, which skips every block the rule hides.

Without a `Segments` argument (generation, a layout with a plain padding mask) the function is transformers'
SDPA attention, with the SDPA mask, so a model loaded with `segments` works everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from lit_daa.errors import InputError

NAME = "segments"
KWARG = "lit_daa_segments"  # the model-forward keyword that carries `Segments` down to attention
FLEX_DEVICES = ("cuda",)  # devices whose segment attention is FlexAttention (elsewhere: SDPA per segment)


@dataclass(frozen=True)
class Group:
    """A prompt [start, end) of a row and its responses' [start, end) spans."""

    prompt: tuple[int, int]
    responses: list[tuple[int, int]]

    @property
    def length(self) -> int:
        return self.prompt[1] - self.prompt[0] + max((b - a for a, b in self.responses), default=0)


@dataclass
class Segments:
    """A batch's segment structure: (R, S) document ids (-1 on padding) and segment ids (0: prompt, i: the
    group's i-th response), with what each device's attention needs built once per forward, on first use."""

    doc_ids: Tensor
    segments: Tensor
    _groups: list[list[Group]] | None = field(default=None, repr=False)
    _block_mask: Any = field(default=None, repr=False)

    def groups(self) -> list[list[Group]]:
        """Per row, its groups in order (read on the host once)."""
        if self._groups is None:
            self._groups = [
                _row_groups(d, s) for d, s in zip(self.doc_ids.tolist(), self.segments.tolist(), strict=True)
            ]
        return self._groups

    def block_mask(self) -> Any:
        """The FlexAttention block mask of the same rule (`lit_daa.layouts.masks.block_mask`)."""
        if self._block_mask is None:
            from lit_daa.layouts.masks import block_mask

            self._block_mask = block_mask(self.doc_ids, self.segments)
        return self._block_mask


def _row_groups(docs: list[int], segs: list[int]) -> list[Group]:
    """The groups of one row from its document and segment ids (runs of equal ids are spans)."""
    groups: dict[int, Group] = {}
    start = 0
    for i in range(1, len(docs) + 1):
        if i < len(docs) and docs[i] == docs[start] and segs[i] == segs[start]:
            continue
        doc = docs[start]
        if doc >= 0:
            group = groups.setdefault(doc, Group((start, start), []))
            if segs[start] == 0:
                groups[doc] = Group((start, i), group.responses)
            else:
                group.responses.append((start, i))
        start = i
    return list(groups.values())


def _segment_sdpa(query: Tensor, key: Tensor, value: Tensor, groups: list[Group], dropout: float, scale: Any) -> Tensor:
    """One row's attention, (H, S, D) each, group by group: (H, S, D), zeros on padding."""
    pieces: list[tuple[int, Tensor]] = []

    def attend(q_span: tuple[int, int], kv_spans: list[tuple[int, int]], mask: Tensor | None) -> None:
        q = query[:, q_span[0] : q_span[1]]
        k = torch.cat([key[:, a:b] for a, b in kv_spans], dim=1) if len(kv_spans) > 1 else key[:, slice(*kv_spans[0])]
        v = (
            torch.cat([value[:, a:b] for a, b in kv_spans], dim=1)
            if len(kv_spans) > 1
            else value[:, slice(*kv_spans[0])]
        )
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=dropout, is_causal=mask is None, scale=scale
        )
        pieces.append((q_span[0], out))

    for group in groups:
        (p0, p1), responses = group.prompt, list(group.responses)
        if responses and responses[0][0] == p1:  # the first response follows its prompt: one causal call for both
            first = responses.pop(0)
            attend((p0, first[1]), [(p0, first[1])], None)
        elif p1 > p0:
            attend((p0, p1), [(p0, p1)], None)
        for a, b in responses:
            # the response's queries see the whole prompt and the response up to themselves
            mask = torch.ones(b - a, p1 - p0 + b - a, dtype=torch.bool, device=query.device).tril(p1 - p0)
            attend((a, b), [(p0, p1), (a, b)] if p1 > p0 else [(a, b)], mask)
    pieces.sort(key=lambda piece: piece[0])
    out, at = [], 0
    for start, piece in pieces:
        if start > at:
            out.append(query.new_zeros(query.shape[0], start - at, value.shape[-1]))
        out.append(piece)
        at = start + piece.shape[1]
    if at < query.shape[1]:
        out.append(query.new_zeros(query.shape[0], query.shape[1] - at, value.shape[-1]))
    return torch.cat(out, dim=1)


def segment_attention_forward(
    module: nn.Module,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attention_mask: Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[Tensor, None]:
    """transformers' attention-function signature: (R, heads, S, D) query/key/value -> (R, S, heads, D)."""
    segments: Segments | None = kwargs.pop(KWARG, None)
    if segments is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout, scaling, **kwargs)
    if kwargs.get("softcap") is not None:
        raise InputError("--model.attn_implementation segments does not cap attention logits; use eager")
    if query.device.type in FLEX_DEVICES:
        from transformers.integrations.flex_attention import flex_attention_forward

        return flex_attention_forward(module, query, key, value, segments.block_mask(), scaling=scaling)
    groups = segments.groups()
    window = kwargs.get("sliding_window")
    if window is not None and max((g.length for row in groups for g in row), default=0) > window:
        raise InputError(
            f"--model.attn_implementation segments does not apply the model's sliding window ({window} tokens), and a "
            "prompt with a response is longer than that: use --model.attn_implementation sdpa"
        )
    n_rep = getattr(module, "num_key_value_groups", 1)
    key, value = repeat_kv(key, n_rep), repeat_kv(value, n_rep)
    rows = [_segment_sdpa(query[r], key[r], value[r], groups[r], dropout, scaling) for r in range(query.shape[0])]
    return torch.stack(rows).transpose(1, 2).contiguous(), None


def register() -> None:
    """Make `segments` an attention implementation (and its mask the SDPA one, used when no `Segments` is given)."""
    AttentionInterface.register(NAME, segment_attention_forward)
    AttentionMaskInterface.register(NAME, sdpa_mask)


register()
