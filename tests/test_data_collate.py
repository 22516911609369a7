"""The collator's batch layout, checked on the exact 2-pair example of its docstring."""

import pytest
import torch

from lit_daa.data.collate import PreferenceCollator
from lit_daa.layouts import SharedPrompt
from lit_daa.layouts.masks import dense_mask

ROWS = [
    {"index": 7, "prompt_ids": [5, 6], "chosen_ids": [8, 2], "rejected_ids": [9, 9, 2]},
    {"index": 3, "prompt_ids": [4], "chosen_ids": [8, 8, 8, 2], "rejected_ids": [2]},
]


def test_two_pair_example_from_the_docstring():
    batch = PreferenceCollator(pad_token_id=0)(ROWS)

    assert set(batch) == {
        "input_ids", "attention_mask", "position_ids", "target_index", "target_ids", "target_seq", "target_pos",
        "counts", "index",
    }  # fmt: skip
    assert batch["input_ids"].dtype == torch.long and batch["attention_mask"].dtype == torch.long
    assert batch["input_ids"].tolist() == [[5, 6, 8, 2, 0], [4, 8, 8, 8, 2], [5, 6, 9, 9, 2], [4, 2, 0, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 0], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 4]] * 4
    assert batch["target_index"].tolist() == [1, 2, 5, 6, 7, 8, 11, 12, 13, 15]
    assert batch["target_ids"].tolist() == [8, 2, 8, 8, 8, 2, 9, 9, 2, 2]
    assert batch["target_seq"].tolist() == [0, 0, 1, 1, 1, 1, 2, 2, 2, 3]
    assert batch["target_pos"].tolist() == [0, 1, 0, 1, 2, 3, 0, 1, 2, 0]
    assert batch["counts"].tolist() == [2, 4, 3, 1]
    assert batch["index"].tolist() == [7, 3]


def test_shared_prompt_example_from_the_docstring():
    batch = PreferenceCollator(pad_token_id=0, layout=SharedPrompt())(ROWS)
    assert batch["input_ids"].tolist() == [[5, 6, 8, 2, 9, 9, 2], [4, 8, 8, 8, 2, 2, 0]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 2, 3, 4], [0, 1, 2, 3, 4, 1, 2]]
    assert batch["doc_ids"].tolist() == [[0, 0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, -1]]
    assert batch["segments"].tolist() == [[0, 0, 1, 1, 2, 2, 2], [0, 1, 1, 1, 1, 2, -1]]
    assert batch["target_index"].tolist() == [1, 2, 1, 4, 5, 7, 8, 9, 10, 7]
    assert batch["target_ids"].tolist() == [8, 2, 9, 9, 2, 8, 8, 8, 2, 2]
    assert batch["target_seq"].tolist() == [0, 0, 2, 2, 2, 1, 1, 1, 1, 3]
    assert batch["counts"].tolist() == [2, 4, 3, 1]
    # rejected tokens (columns 4-6 of row 0) see the prompt and themselves, never the chosen tokens (2-3)
    mask = dense_mask(batch["doc_ids"], batch["segments"])[0, 0].int().tolist()
    assert mask[4] == [1, 1, 0, 0, 1, 0, 0] and mask[6] == [1, 1, 0, 0, 1, 1, 1]
    assert mask[3] == [1, 1, 1, 1, 0, 0, 0]
    pad = dense_mask(batch["doc_ids"], batch["segments"])[1, 0, 6].int().tolist()
    assert pad == [0, 0, 0, 0, 0, 0, 1]  # a pad sees only itself: no fully masked query row


def test_padding_uses_the_pad_token_id():
    batch = PreferenceCollator(pad_token_id=99)(ROWS)
    assert batch["input_ids"][3].tolist() == [4, 2, 99, 99, 99]


def test_cached_reference_logps_come_as_chosen_then_rejected():
    rows = [dict(r, ref_chosen_logps=-1.5 - i, ref_rejected_logps=-2.5 - i) for i, r in enumerate(ROWS)]
    batch = PreferenceCollator(pad_token_id=0)(rows)
    assert batch["ref_logps"].dtype == torch.float32
    assert batch["ref_logps"].tolist() == [-1.5, -2.5, -2.5, -3.5]


def test_rows_must_all_or_none_carry_reference_logps():
    rows = [dict(ROWS[0], ref_chosen_logps=-1.0, ref_rejected_logps=-2.0), ROWS[1]]
    with pytest.raises(ValueError, match="reference"):
        PreferenceCollator(pad_token_id=0)(rows)
