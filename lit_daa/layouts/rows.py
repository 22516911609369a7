"""`RowBuilder`: lay token sequences out in model rows and record which logits score which response tokens.

A *group* is a prompt followed by one or more responses. In a group with `branch=True` every response continues
from the end of the prompt: its positions restart at len(prompt), it attends to the prompt and to itself only, and
the last prompt token's logits predict the first token of every response. Groups in one row never see each other
(each has its own document id). Padding rows out to the longest one gives pads a document of their own.

The batch it returns (R rows of S tokens, K scored tokens, N sequences):

- `input_ids` (R, S) long, `position_ids` (R, S) long.
- `doc_ids` (R, S) long and `segments` (R, S) long (0: prompt, i > 0: the group's i-th response, -1: padding),
  from which `lit_daa.layouts.masks` builds the attention mask on the device; or, for layouts without branches
  or packing (`dense=True`), a plain `attention_mask` (R, S) long of 1 on real tokens.
- `target_index` (K,) long: flat row * S + column of the position whose logits predict each scored token.
- `target_ids` (K,) long: the scored tokens. `target_seq` (K,) long: the sequence (0..N-1) each belongs to.
  `target_pos` (K,) long: each scored token's position in its response (0 for the first).
- `counts` (N,) float: scored tokens per sequence.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


class RowBuilder:
    """Accumulate groups into rows, then `finish` into tensors (see the module docstring).

    Args:
        num_sequences: N, the number of response sequences the batch scores (their indices are given per group).
    """

    def __init__(self, num_sequences: int) -> None:
        self.num_sequences = num_sequences
        self.rows: list[dict[str, list[int]]] = []
        # (row, column of the predicting position, token, sequence, position of the token in its response)
        self.targets: list[tuple[int, int, int, int, int]] = []
        self.docs = 0

    def new_row(self) -> None:
        self.rows.append({"ids": [], "pos": [], "doc": [], "seg": []})

    @property
    def row_length(self) -> int:
        return len(self.rows[-1]["ids"]) if self.rows else 0

    def add_group(self, prompt: Sequence[int], responses: Sequence[tuple[int, Sequence[int]]]) -> None:
        """Append a prompt and its responses, each given as (sequence index, token ids), to the current row."""
        if not self.rows:
            self.new_row()
        row, r = self.rows[-1], len(self.rows) - 1
        doc, self.docs = self.docs, self.docs + 1
        start, p = len(row["ids"]), len(prompt)
        row["ids"] += prompt
        row["pos"] += range(p)
        row["doc"] += [doc] * p
        row["seg"] += [0] * p
        for branch, (seq, ids) in enumerate(responses, start=1):
            at = len(row["ids"])
            row["ids"] += ids
            row["pos"] += range(p, p + len(ids))
            row["doc"] += [doc] * len(ids)
            row["seg"] += [branch] * len(ids)
            for i, token in enumerate(ids):
                # token i is predicted by the position before it in its own branch: the prompt's last for i = 0
                before = at + i - 1 if i > 0 else start + p - 1
                if i > 0 or p > 0:  # a response at position 0 has nothing to be predicted from
                    self.targets.append((r, before, token, seq, i))

    def finish(self, pad_token_id: int, dense: bool, pad_to_multiple_of: int = 1) -> dict[str, Tensor]:
        """The batch tensors; `dense` gives a 2-D padding mask instead of document and segment ids."""
        width = max(len(row["ids"]) for row in self.rows)
        width = -(-width // pad_to_multiple_of) * pad_to_multiple_of
        shape = (len(self.rows), width)
        input_ids = torch.full(shape, pad_token_id, dtype=torch.long)
        position_ids = torch.zeros(shape, dtype=torch.long)
        doc_ids = torch.full(shape, -1, dtype=torch.long)
        segments = torch.full(shape, -1, dtype=torch.long)
        for r, row in enumerate(self.rows):
            n = len(row["ids"])
            input_ids[r, :n] = torch.tensor(row["ids"], dtype=torch.long)
            position_ids[r, :n] = torch.tensor(row["pos"], dtype=torch.long)
            doc_ids[r, :n] = torch.tensor(row["doc"], dtype=torch.long)
            segments[r, :n] = torch.tensor(row["seg"], dtype=torch.long)
            position_ids[r, n:] = torch.arange(width - n) + (row["pos"][-1] + 1 if n else 0)
        targets = torch.tensor(self.targets, dtype=torch.long).reshape(-1, 5)
        batch = {
            "input_ids": input_ids,
            "position_ids": position_ids,
            "target_index": targets[:, 0] * width + targets[:, 1],
            "target_ids": targets[:, 2],
            "target_seq": targets[:, 3],
            "target_pos": targets[:, 4],
            "counts": torch.bincount(targets[:, 3], minlength=self.num_sequences).float(),
        }
        if dense:
            batch["attention_mask"] = (doc_ids >= 0).long()
        else:
            batch["doc_ids"], batch["segments"] = doc_ids, segments
        return batch
