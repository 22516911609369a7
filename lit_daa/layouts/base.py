"""The layout interface: how a batch of tokenized preference pairs becomes model rows.

Every layout returns the same kind of batch (`lit_daa.layouts.rows`), so one scoring function serves them all and
gives the same per-pair log-probs (to float rounding) whatever the layout. Sequences are numbered
[chosen of pairs 0..B-1; rejected of pairs 0..B-1], i.e. N = 2B.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from lit_daa.errors import InputError
from lit_daa.layouts.rows import RowBuilder


class Layout:
    """Base class: subclasses implement `place(builder, pairs)`.

    Args:
        pad_to_multiple_of: pad the row length to a multiple of this, so that `torch.compile` sees few shapes.
    """

    dense: bool = False  # True: no branches or packing, a 2-D padding mask is enough

    def __init__(self, pad_to_multiple_of: int = 1) -> None:
        if pad_to_multiple_of < 1:
            raise InputError(f"data.layout.pad_to_multiple_of must be at least 1, got {pad_to_multiple_of}")
        self.pad_to_multiple_of = pad_to_multiple_of

    def place(self, builder: RowBuilder, pairs: Sequence[tuple[list[int], list[int], list[int]]]) -> None:
        raise NotImplementedError

    def collate(self, rows: Sequence[Mapping[str, Any]], pad_token_id: int) -> dict[str, Tensor]:
        """B tokenized pairs (`prompt_ids`, `chosen_ids`, `rejected_ids`, ...) -> a scoring batch for 2B sequences."""
        pairs = [(list(r["prompt_ids"]), list(r["chosen_ids"]), list(r["rejected_ids"])) for r in rows]
        builder = RowBuilder(2 * len(pairs))
        self.place(builder, pairs)
        return builder.finish(pad_token_id, dense=self.dense, pad_to_multiple_of=self.pad_to_multiple_of)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def sequence_batch(
    prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], pad_token_id: int = 0
) -> dict[str, Tensor]:
    """A scoring batch of N independent (prompt, response) sequences, one per row, right-padded."""
    builder = RowBuilder(len(responses))
    for i, (prompt, response) in enumerate(zip(prompts, responses, strict=True)):
        builder.new_row()
        builder.add_group(list(prompt), [(i, list(response))])
    return builder.finish(pad_token_id, dense=True)


def to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, Tensor) else v for k, v in batch.items()}


def real_tokens(batch: Mapping[str, Any]) -> Tensor:
    """The number of real (non-padding) tokens a scoring batch's rows hold, as a 0-d tensor (no host sync)."""
    if "attention_mask" in batch:
        return batch["attention_mask"].sum()
    return (batch["doc_ids"] >= 0).sum()
