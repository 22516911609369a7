"""Unpaired rows (prompt, completion, label): detection, bad rows named by file, line and field, the unpaired view
of pairs, mismatched completions, batches mixing labels in any ratio, and the refusals when data and objective
disagree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from datasets import List, Value

from lit_daa.data import PreferenceDataModule
from lit_daa.data.schemas import ConversationalUnpaired, PromptCompletionLabel, detect_schema
from lit_daa.errors import InputError
from lit_daa.objectives import DPO, KTO
from lit_daa.scoring import check_batch_kind
from lit_daa.synthetic.source import SyntheticPreferences

PROMPT = "topic food : food_0 food_1 . answer :"
TEXT = Value("string")
SKIP_HINT = "(use --data.skip_bad_rows true to skip such rows; 1 row is bad)"

pytestmark = pytest.mark.usefixtures("datasets_cache")  # fixtures in conftest.py


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def rows(desirable: int, undesirable: int) -> list[dict]:
    good = [
        {"prompt": f"{PROMPT} food_{i % 9}", "completion": " food_3 food_4", "label": True} for i in range(desirable)
    ]
    bad = [{"prompt": f"{PROMPT} food_{i % 9}", "completion": " music_1", "label": False} for i in range(undesirable)]
    return good + bad


def load(tokenizer_dir: str, path: Path, **options: object) -> PreferenceDataModule:
    dm = PreferenceDataModule(
        tokenizer=tokenizer_dir, train_path=str(path), max_length=32, max_prompt_length=16, val_fraction=0.0,
        **options,
    )  # fmt: skip
    dm.setup("fit")
    return dm


def test_detected_from_the_columns_strings_and_messages() -> None:
    strings = {"prompt": TEXT, "completion": TEXT, "label": Value("bool")}
    assert isinstance(detect_schema(strings), PromptCompletionLabel)
    messages = {**strings, "completion": List({"role": TEXT, "content": TEXT})}
    assert isinstance(detect_schema(messages), ConversationalUnpaired)
    with pytest.raises(InputError) as err:
        detect_schema({**strings, "label": Value("int64")}, "rows.jsonl")
    assert str(err.value) == (
        "rows.jsonl column 'label' has type int64, expected bool (true or false) for prompt/completion/label data"
    )
    with pytest.raises(InputError) as err:
        detect_schema({"prompt": TEXT, "completion": TEXT}, "rows.jsonl")
    assert str(err.value).startswith("rows.jsonl has no column 'label' (columns found: prompt, completion)")


def test_rows_served_with_mismatched_completions_in_any_ratio(tokenizer_dir: str, tmp_path: Path) -> None:
    dm = load(tokenizer_dir, write_jsonl(tmp_path / "rows.jsonl", rows(3, 7)), unpaired=True, batch_size=10)
    served = dm.train_dataset.to_dict()
    assert served["label"] == [True] * 3 + [False] * 7
    own, mismatched = served["chosen_ids"], served["rejected_ids"]
    assert mismatched == [own[-1], *own[:-1]]  # row i scores row i - 1's completion under its own prompt
    batch = next(iter(dm.train_dataloader()))
    assert batch["label"].sum().item() == 3 and batch["counts"].shape == (20,)  # 10 completions + 10 mismatched


def test_conversational_rows(tokenizer_dir: str, tmp_path: Path) -> None:
    chat = [
        {"prompt": [{"role": "user", "content": "topic food :"}], "completion": [{"role": "assistant", "content": c}],
         "label": label}
        for c, label in (("food_1 food_2", True), ("music_3", False))
    ]  # fmt: skip
    dm = load(tokenizer_dir, write_jsonl(tmp_path / "chat.jsonl", chat), unpaired=True)
    assert dm.train_dataset["label"] == [True, False]


@pytest.mark.parametrize(
    ("third", "problem"),
    [
        ({"label": "yes"}, "field 'label': expected true or false, found str 'yes'"),
        ({"label": None}, "field 'label': missing value; every unpaired row needs a label, true (desirable) or false"),
        ({"completion": "  "}, "field 'completion': empty response"),
    ],
)
def test_bad_rows_name_file_line_and_field(tokenizer_dir: str, tmp_path: Path, third: dict, problem: str) -> None:
    data = rows(2, 2)
    data[2] = {**data[2], **third}
    path = write_jsonl(tmp_path / "rows.jsonl", data)
    with pytest.raises(InputError) as err:
        load(tokenizer_dir, path, unpaired=True)
    assert str(err.value) == f"{path} line 3, {problem} {SKIP_HINT}"
    assert len(load(tokenizer_dir, path, unpaired=True, skip_bad_rows=True).train_dataset) == 3


def test_unpaired_file_without_the_option_is_one_sentence(tokenizer_dir: str, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "rows.jsonl", rows(2, 2))
    with pytest.raises(InputError) as err:
        load(tokenizer_dir, path)
    assert str(err.value) == (
        f"{path} holds unpaired rows (prompt/completion/label), which only unpaired objectives train on; set "
        "--data.unpaired true with e.g. --config configs/objectives/kto.yaml"
    )


def test_unpaired_view_of_the_synthetic_world() -> None:
    dm = PreferenceDataModule(source=SyntheticPreferences(num_train=12, num_val=4), unpaired=True, batch_size=8)
    dm.setup("fit")
    train, val = dm.train_dataset.to_dict(), dm.val_dataset
    assert len(train["label"]) == 24 and len(val) == 8 and train["label"] == [True] * 12 + [False] * 12
    pairs = PreferenceDataModule(source=SyntheticPreferences(num_train=12, num_val=4))
    pairs.setup("fit")
    pairs = pairs.train_dataset.to_dict()
    assert train["chosen_ids"] == pairs["chosen_ids"] + pairs["rejected_ids"]
    assert train["index"] == pairs["index"] * 2  # both rows of a pair name its source row
    # a row's mismatched completion comes from another pair (desirable rows first, then undesirable)
    assert train["rejected_ids"][12] == train["chosen_ids"][11]


def test_objective_and_batch_kind_must_agree() -> None:
    unpaired = {"label": torch.tensor([True])}
    with pytest.raises(InputError) as err:
        check_batch_kind(DPO(0.1), unpaired)
    assert str(err.value).startswith(
        "model.objective DPO trains on preference pairs, but the data serves unpaired rows"
    )
    with pytest.raises(InputError) as err:
        check_batch_kind(KTO(0.1), {})
    assert str(err.value) == (
        "model.objective KTO trains on unpaired rows (prompt, completion, label), but the data serves preference "
        "pairs; set --data.unpaired true to split each pair into a desirable and an undesirable row"
    )


def test_one_scoring_path_every_layout_and_the_reference_cache(tmp_path: Path, monkeypatch) -> None:
    """Unpaired rows through Concatenated, SharedPrompt and Packed, against a frozen reference and a cached one: the
    same log-probs of the rows and of their mismatched completions, so the same KTO loss."""
    from lit_daa.layouts import Concatenated, Packed, SharedPrompt
    from lit_daa.module import DAAModule
    from lit_daa.reference_cache import describe, fill_reference_cache
    from lit_daa.scoring import score_pairs

    monkeypatch.setenv("LIT_DAA_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    frozen, cached = DAAModule(objective=KTO(0.5)), DAAModule(objective=KTO(0.5), cached_reference=True)
    frozen.configure_model()
    cached.configure_model()
    with torch.no_grad():  # move the policy off its reference, so log-ratios and the KL point are not all zero
        for p, q in zip(frozen.policy.parameters(), cached.policy.parameters(), strict=True):
            q.copy_(p.add_(0.05 * torch.randn_like(p)))
    source = SyntheticPreferences(num_train=6, num_val=0, seed=2)
    losses = []
    for layout, module in (
        (Concatenated(), frozen),
        (SharedPrompt(), frozen),
        (Packed(96), frozen),
        (Packed(96), cached),
    ):
        dm = PreferenceDataModule(source=source, unpaired=True, val_fraction=0.0, batch_size=12, layout=layout)
        dm.setup("fit")
        if module is cached:
            results = fill_reference_cache(
                dm, "embedded:neox-tiny", "float32", torch.device("cpu"), module._load_reference
            )
            assert describe(results).startswith(f"reference log-probs of {len(dm.train_dataset)} train rows:")
        scored = score_pairs(module.policy, module.reference, module.objective, next(iter(dm.train_dataloader())))
        rows = scored.logps
        losses.append((scored.output.loss.item(), (rows.kl_policy - rows.kl_ref).mean().item()))  # z0 before clamping
    assert abs(losses[0][1]) > 0.1
    for loss, kl in losses[1:]:
        assert loss == pytest.approx(losses[0][0], abs=1e-5) and kl == pytest.approx(losses[0][1], abs=1e-4)
