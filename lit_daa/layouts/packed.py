"""`Packed`: shared-prompt pairs packed several to a row up to a token budget, with per-pair masks and positions."""

from __future__ import annotations

from collections.abc import Sequence

from lit_daa.errors import InputError
from lit_daa.layouts.base import Layout
from lit_daa.layouts.rows import RowBuilder


class Packed(Layout):
    """Pairs laid out as in `SharedPrompt`, placed one after another in a row while the row stays within
    `token_budget` tokens (a longer pair gets a row of its own); pairs never attend to each other.

    Padding is left only at the end of the last rows, so almost every computed token is a real one. With
    `--model.attn_implementation segments` (`lit_daa.segment_attention`) attention, too, costs only each pair's own
    segments; with sdpa it pays for a dense mask over the whole row.

    Args:
        token_budget: most tokens per row.
        pad_to_multiple_of: pad rows to a multiple of this length (fewer shapes for `torch.compile`).
    """

    def __init__(self, token_budget: int = 2048, pad_to_multiple_of: int = 1) -> None:
        super().__init__(pad_to_multiple_of)
        if token_budget < 1:
            raise InputError(
                f"data.layout.token_budget must be at least 1, got {token_budget}: give the most tokens per packed "
                "row, e.g. 2048 (at least data.max_length)"
            )
        self.token_budget = token_budget

    def place(self, builder: RowBuilder, pairs: Sequence[tuple[list[int], list[int], list[int]]]) -> None:
        b = len(pairs)
        for j, (prompt, chosen, rejected) in enumerate(pairs):
            size = len(prompt) + len(chosen) + len(rejected)
            if not builder.rows or builder.row_length + size > self.token_budget:
                builder.new_row()
            builder.add_group(prompt, [(j, chosen), (b + j, rejected)])

    def __repr__(self) -> str:
        return f"Packed(token_budget={self.token_budget})"
