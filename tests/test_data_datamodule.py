"""PreferenceDataModule end to end: option checks, sources and schemas, hold-out, loaders and batches."""

import json

import pytest
from datasets import Dataset, DatasetDict

from lit_daa.data import PreferenceDataModule
from lit_daa.data.resumable import ResumableDataLoader
from lit_daa.errors import InputError
from lit_daa.synthetic.source import SyntheticPreferences
from lit_daa.synthetic.world import SyntheticWorld

pytestmark = pytest.mark.usefixtures("datasets_cache")  # fixtures in conftest.py


def jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "exactly one of data.train_path, data.hub_dataset, data.source (none was given)"),
        (
            {"train_path": "a.jsonl", "hub_dataset": "x/y"},
            "(data.train_path and data.hub_dataset were given; keep one, e.g. with --data.hub_dataset null)",
        ),
        ({"source": SyntheticPreferences(), "val_path": "v.jsonl"}, "data.val_path needs data.train_path"),
        ({"source": SyntheticPreferences(), "val_fraction": 1.0}, "data.val_fraction must be in [0, 1)"),
        ({"source": SyntheticPreferences(), "batch_size": 0}, "data.batch_size must be at least 1"),
        ({"source": SyntheticPreferences(), "max_length": 64, "max_prompt_length": 64}, "below data.max_length"),
    ],
)
def test_options_are_checked_when_built(options, message):
    with pytest.raises(InputError) as caught:
        PreferenceDataModule(**options)
    assert message in str(caught.value)


def test_synthetic_source_with_the_embedded_tokenizer(tmp_path, monkeypatch):
    monkeypatch.setenv("LIT_DAA_CACHE", str(tmp_path / "lit-daa-cache"))
    dm = PreferenceDataModule(
        source=SyntheticPreferences(num_train=40, num_val=8), batch_size=4, max_length=32, max_prompt_length=16
    )
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("validate")  # idempotent
    assert (dm.report.train_pairs, dm.report.val_pairs, dm.report.train.bad) == (40, 8, 0)

    loader = dm.train_dataloader()
    assert isinstance(loader, ResumableDataLoader) and len(loader) == 10
    batch = next(iter(loader))
    assert batch["input_ids"].shape[0] == 4 and batch["index"].shape == (4,)  # SharedPrompt: a row per pair
    row = dm.train_dataset[int(batch["index"][0])]  # no hold-out: row i of the dataset has index i
    pair = SyntheticWorld().pairs(40, 0)[int(batch["index"][0])]
    response = batch["target_ids"][batch["target_seq"] == 0]  # sequence 0: the first pair's chosen response
    assert dm.tokenizer.decode(response) == pair["chosen"].strip() + " <eos>"
    assert batch["input_ids"][0][: len(row["prompt_ids"])].tolist() == row["prompt_ids"]
    rejected = batch["target_ids"][batch["target_seq"] == 4]  # sequence B + 0: its rejected response
    assert dm.tokenizer.decode(rejected) == pair["rejected"].strip() + " <eos>"

    val = next(iter(dm.val_dataloader()))
    assert val["index"].tolist() == list(range(4))  # validation is not shuffled
    assert next(iter(dm.test_dataloader()))["index"].tolist() == list(range(4))


def test_validation_is_held_out_by_seed_when_the_source_has_none(tokenizer_dir):
    def split(seed: int) -> tuple[list[int], list[int]]:
        source = SyntheticPreferences(num_train=40, num_val=0)
        dm = PreferenceDataModule(tokenizer=tokenizer_dir, source=source, val_fraction=0.25, seed=seed)
        dm.setup()
        assert dm.report.validation is None and dm.report.train.rows == 40
        return list(dm.train_dataset["index"]), list(dm.val_dataset["index"])

    train, val = split(1)
    assert len(val) == 10 and sorted(train + val) == list(range(40))
    assert split(1) == (train, val) and split(2)[1] != val

    dm = PreferenceDataModule(
        tokenizer=tokenizer_dir, source=SyntheticPreferences(num_train=8, num_val=0), val_fraction=0
    )
    dm.setup()
    assert dm.val_dataset is None and dm.val_dataloader() == []


def test_saved_dataset_dict_with_its_validation_split(tokenizer_dir, tmp_path):
    rows = SyntheticWorld().pairs(12, 5)
    DatasetDict({"train": Dataset.from_list(rows[:9]), "validation": Dataset.from_list(rows[9:])}).save_to_disk(
        str(tmp_path / "saved")
    )
    dm = PreferenceDataModule(tokenizer=tokenizer_dir, train_path=str(tmp_path / "saved"))
    dm.setup()
    assert (dm.report.train_pairs, dm.report.val_pairs) == (9, 3)
    assert dm.report.validation.source == f"{tmp_path / 'saved'} (validation split)"


def test_hub_options_and_an_hh_layout(tokenizer_dir, tmp_path):
    prompt = "\n\nHuman: topic food :\n\nAssistant:"
    rows = [{"chosen": f"{prompt} food_{i}", "rejected": f"{prompt} music_{i}"} for i in range(6)]
    (tmp_path / "hh").mkdir()
    jsonl(tmp_path / "hh" / "train.jsonl", rows)
    jsonl(tmp_path / "hh" / "test.jsonl", rows[:2])
    dm = PreferenceDataModule(tokenizer=tokenizer_dir, hub_dataset=str(tmp_path / "hh"), hub_val_split="test")
    dm.setup()
    assert (dm.report.train_pairs, dm.report.val_pairs) == (6, 2)
    tok = dm.tokenizer
    assert dm.train_dataset[0]["prompt_ids"] == tok(prompt, add_special_tokens=False)["input_ids"]
    assert dm.train_dataset[0]["chosen_ids"] == [*tok(" food_0", add_special_tokens=False)["input_ids"], 2]


def test_conversational_file_uses_the_chat_template(tokenizer_dir, tmp_path):
    def conversation(reply: str) -> list[dict[str, str]]:
        return [{"role": "user", "content": "topic food"}, {"role": "assistant", "content": reply}]

    path = jsonl(tmp_path / "chat.jsonl", [{"chosen": conversation("food_1"), "rejected": conversation("music_1")}] * 3)
    dm = PreferenceDataModule(tokenizer=tokenizer_dir, train_path=path, val_fraction=0)
    dm.setup()
    tok = dm.tokenizer
    # The word tokenizer knows neither "user" nor "assistant" (they become <unk>); the layout is what counts.
    assert (
        dm.train_dataset[0]["prompt_ids"] == tok("user : topic food assistant :", add_special_tokens=False)["input_ids"]
    )
    assert tok.decode(dm.train_dataset[0]["rejected_ids"]) == "music_1 <eos>"
