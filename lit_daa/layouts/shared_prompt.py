"""`SharedPrompt`: one row per pair, [prompt][chosen][rejected], the prompt computed once."""

from __future__ import annotations

from collections.abc import Sequence

from lit_daa.layouts.base import Layout
from lit_daa.layouts.rows import RowBuilder


class SharedPrompt(Layout):
    """B rows: the rejected tokens attend to the prompt and themselves (never to the chosen ones) and their
    positions continue from the prompt's end, so each response is scored exactly as in its own sequence.

    Needs a model whose attention honours a custom 4-D mask and `position_ids` (sdpa or flex_attention:
    GPT-NeoX, Llama, Qwen2, Mistral, ...). Rows are padded to the longest.
    """

    def place(self, builder: RowBuilder, pairs: Sequence[tuple[list[int], list[int], list[int]]]) -> None:
        b = len(pairs)
        for j, (prompt, chosen, rejected) in enumerate(pairs):
            builder.new_row()
            builder.add_group(prompt, [(j, chosen), (b + j, rejected)])
