"""Collate tokenized preference pairs into one right-padded batch of [chosen rows; rejected rows]."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from lit_daa.logps import right_pad


class PreferenceCollator:
    """Turn B tokenized pairs into a batch of 2B sequences: rows 0..B-1 prompt+chosen, rows B..2B-1 prompt+rejected.

    Each input row holds `prompt_ids`, `chosen_ids`, `rejected_ids` (responses already end with EOS) and `index`,
    optionally `ref_chosen_logps` and `ref_rejected_logps` (cached reference log-probs). Output, T = longest row:

    - `input_ids` LongTensor (2B, T): right-padded with `pad_token_id`.
    - `attention_mask` LongTensor (2B, T): 1 at real tokens, 0 at padding.
    - `response_mask` BoolTensor (2B, T): True at response tokens (EOS included), False at prompt and padding.
    - `index` LongTensor (B,): the pairs' row indices in their source split.
    - `ref_logps` FloatTensor (2B,): [ref_chosen; ref_rejected], only when the rows carry both columns.
    - `valid` BoolTensor (B,): only when some rows carry `valid = False` (they pad a rank's share of an evaluation
      set, see `lit_daa.data.eval_shards`, and are left out of metrics).

    Example with pad_token_id 0 and two pairs (EOS = 2)::

        rows = [{"index": 7, "prompt_ids": [5, 6], "chosen_ids": [8, 2], "rejected_ids": [9, 9, 2]},
                {"index": 3, "prompt_ids": [4], "chosen_ids": [8, 8, 8, 2], "rejected_ids": [2]}]

        input_ids      = [[5, 6, 8, 2, 0],      # pair 0, prompt + chosen
                          [4, 8, 8, 8, 2],      # pair 1, prompt + chosen
                          [5, 6, 9, 9, 2],      # pair 0, prompt + rejected
                          [4, 2, 0, 0, 0]]      # pair 1, prompt + rejected
        attention_mask = [[1, 1, 1, 1, 0],
                          [1, 1, 1, 1, 1],
                          [1, 1, 1, 1, 1],
                          [1, 1, 0, 0, 0]]
        response_mask  = [[0, 0, 1, 1, 0],      # as booleans
                          [0, 1, 1, 1, 1],
                          [0, 0, 1, 1, 1],
                          [0, 1, 0, 0, 0]]
        index          = [7, 3]

    Args:
        pad_token_id: the token id written at padding positions (masked out by `attention_mask`).
    """

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        prompts = [list(r["prompt_ids"]) for r in rows]
        responses = [list(r["chosen_ids"]) for r in rows] + [list(r["rejected_ids"]) for r in rows]
        prompts = prompts + prompts  # the rejected rows share their pair's prompt
        input_ids, attention_mask, response_mask = right_pad(
            list(zip(prompts, responses, strict=True)), self.pad_token_id
        )
        batch = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "response_mask": response_mask,
            "index": torch.tensor([int(r["index"]) for r in rows], dtype=torch.long),
        }
        if not all(r.get("valid", True) for r in rows):  # rows padding a rank's share of an evaluation set
            batch["valid"] = torch.tensor([bool(r.get("valid", True)) for r in rows], dtype=torch.bool)
        has_ref = ["ref_chosen_logps" in r and "ref_rejected_logps" in r for r in rows]
        if any(has_ref):
            if not all(has_ref):
                raise ValueError("some rows of the batch carry cached reference log-probs and some do not")
            ref = [float(r["ref_chosen_logps"]) for r in rows] + [float(r["ref_rejected_logps"]) for r in rows]
            batch["ref_logps"] = torch.tensor(ref, dtype=torch.float32)
        return batch
