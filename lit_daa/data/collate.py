"""Collate tokenized preference pairs into one scoring batch laid out by a `lit_daa.layouts.Layout`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from lit_daa.layouts import Concatenated, Layout


class PreferenceCollator:
    """Turn B tokenized pairs into a batch that scores 2B sequences: [chosen of pairs 0..B-1; rejected of 0..B-1].

    Each input row holds `prompt_ids`, `chosen_ids`, `rejected_ids` (responses already end with EOS) and `index`,
    optionally `ref_chosen_logps` and `ref_rejected_logps` (cached reference log-probs). The layout places the
    tokens in rows (`lit_daa.layouts.rows` lists every tensor); the collator adds:

    - `index` LongTensor (B,): the pairs' row indices in their source split.
    - `ref_logps` FloatTensor (2B,): [ref_chosen; ref_rejected], only when the rows carry both columns.
    - `label` BoolTensor (B,): only for unpaired rows (`lit_daa.data.unpaired`), whose `chosen_ids` is the row's
      completion and `rejected_ids` another row's (for the KL estimate): True for a desirable completion.
    - `valid` BoolTensor (B,): only when some rows carry `valid = False` (they pad a rank's share of an evaluation
      set, see `lit_daa.data.eval_shards`, and are left out of metrics).

    Example with pad_token_id 0 and two pairs (EOS = 2)::

        rows = [{"index": 7, "prompt_ids": [5, 6], "chosen_ids": [8, 2], "rejected_ids": [9, 9, 2]},
                {"index": 3, "prompt_ids": [4], "chosen_ids": [8, 8, 8, 2], "rejected_ids": [2]}]

    `Concatenated` (2B rows, every prompt twice):

        input_ids      = [[5, 6, 8, 2, 0],      # pair 0, prompt + chosen
                          [4, 8, 8, 8, 2],      # pair 1, prompt + chosen
                          [5, 6, 9, 9, 2],      # pair 0, prompt + rejected
                          [4, 2, 0, 0, 0]]      # pair 1, prompt + rejected
        attention_mask = [[1, 1, 1, 1, 0], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]
        position_ids   = [[0, 1, 2, 3, 4]] * 4
        target_index   = [1, 2, 5, 6, 7, 8, 11, 12, 13, 15]   # row * 5 + column predicting each response token
        target_ids     = [8, 2, 8, 8, 8, 2, 9, 9, 2, 2]
        target_seq     = [0, 0, 1, 1, 1, 1, 2, 2, 2, 3]       # chosen 0, chosen 1, rejected 0, rejected 1
        target_pos     = [0, 1, 0, 1, 2, 3, 0, 1, 2, 0]       # each token's position in its response
        counts         = [2, 4, 3, 1]
        index          = [7, 3]

    `SharedPrompt` (B rows, [prompt][chosen][rejected], rejected positions restart at the prompt's end):

        input_ids      = [[5, 6, 8, 2, 9, 9, 2], [4, 8, 8, 8, 2, 2, 0]]
        position_ids   = [[0, 1, 2, 3, 2, 3, 4], [0, 1, 2, 3, 4, 1, 2]]
        doc_ids        = [[0, 0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, -1]]
        segments       = [[0, 0, 1, 1, 2, 2, 2], [0, 1, 1, 1, 1, 2, -1]]   # prompt 0, chosen 1, rejected 2, pad -1
        target_index   = [1, 2, 1, 4, 5, 7, 8, 9, 10, 7]       # the last prompt token (1, 7) predicts both responses
        target_ids     = [8, 2, 9, 9, 2, 8, 8, 8, 2, 2]
        target_seq     = [0, 0, 2, 2, 2, 1, 1, 1, 1, 3]
        counts         = [2, 4, 3, 1]

    Args:
        pad_token_id: the token id written at padding positions (never attended to nor scored).
        layout: how pairs become rows.
    """

    def __init__(self, pad_token_id: int, layout: Layout | None = None) -> None:
        self.pad_token_id = pad_token_id
        self.layout = layout if layout is not None else Concatenated()

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self.layout.collate(rows, self.pad_token_id)
        batch["index"] = torch.tensor([int(r["index"]) for r in rows], dtype=torch.long)
        if "label" in rows[0]:  # unpaired rows (`lit_daa.data.unpaired`): their 2B sequences are [own; mismatched]
            batch["label"] = torch.tensor([bool(r["label"]) for r in rows], dtype=torch.bool)
        if not all(r.get("valid", True) for r in rows):  # rows padding a rank's share of an evaluation set
            batch["valid"] = torch.tensor([bool(r.get("valid", True)) for r in rows], dtype=torch.bool)
        has_ref = ["ref_chosen_logps" in r and "ref_rejected_logps" in r for r in rows]
        if any(has_ref):
            if not all(has_ref):
                raise ValueError("some rows of the batch carry cached reference log-probs and some do not")
            ref = [float(r["ref_chosen_logps"]) for r in rows] + [float(r["ref_rejected_logps"]) for r in rows]
            batch["ref_logps"] = torch.tensor(ref, dtype=torch.float32)
        return batch
