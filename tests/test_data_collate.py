"""The collator's batch layout, checked on the exact 2-pair example of its docstring."""

import pytest
import torch

from lit_daa.data.collate import PreferenceCollator

ROWS = [
    {"index": 7, "prompt_ids": [5, 6], "chosen_ids": [8, 2], "rejected_ids": [9, 9, 2]},
    {"index": 3, "prompt_ids": [4], "chosen_ids": [8, 8, 8, 2], "rejected_ids": [2]},
]


def test_two_pair_example_from_the_docstring():
    batch = PreferenceCollator(pad_token_id=0)(ROWS)

    assert set(batch) == {"input_ids", "attention_mask", "response_mask", "index"}
    assert batch["input_ids"].dtype == torch.long and batch["attention_mask"].dtype == torch.long
    assert batch["response_mask"].dtype == torch.bool
    assert batch["input_ids"].tolist() == [[5, 6, 8, 2, 0], [4, 8, 8, 8, 2], [5, 6, 9, 9, 2], [4, 2, 0, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 0], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]
    assert batch["response_mask"].int().tolist() == [
        [0, 0, 1, 1, 0],
        [0, 1, 1, 1, 1],
        [0, 0, 1, 1, 1],
        [0, 1, 0, 0, 0],
    ]
    assert batch["index"].tolist() == [7, 3]


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
