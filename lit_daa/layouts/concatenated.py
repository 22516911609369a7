"""`Concatenated`: rows [prompt + chosen] for every pair, then [prompt + rejected], right-padded (TRL's layout)."""

from __future__ import annotations

from collections.abc import Sequence

from lit_daa.layouts.base import Layout
from lit_daa.layouts.rows import RowBuilder


class Concatenated(Layout):
    """2B rows: pair j's chosen in row j and its rejected in row B + j; every prompt is computed twice.

    Works with any causal LM (a plain 2-D padding mask). Rows are padded to the longest.
    """

    dense = True

    def place(self, builder: RowBuilder, pairs: Sequence[tuple[list[int], list[int], list[int]]]) -> None:
        b = len(pairs)
        for j, (prompt, chosen, _) in enumerate(pairs):
            builder.new_row()
            builder.add_group(prompt, [(j, chosen)])
        for j, (prompt, _, rejected) in enumerate(pairs):
            builder.new_row()
            builder.add_group(prompt, [(b + j, rejected)])
