"""Sources: local files of each format, save_to_disk folders, a local folder as a hub dataset, synthetic pairs."""

import json

import datasets
import pytest
from datasets import Dataset, DatasetDict

from lit_daa.data.sources import TRAIN, VALIDATION, FileSource, HubSource
from lit_daa.errors import InputError
from lit_daa.synthetic.source import SyntheticPreferences

ROWS = [{"prompt": f"topic food : food_{i} . answer :", "chosen": " food_1", "rejected": " music_2"} for i in range(4)]


@pytest.fixture(autouse=True)
def datasets_cache(tmp_path, monkeypatch):
    """Keep `datasets`' caches inside the test's folder."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))


def write_jsonl(path, rows, blank_after: int | None = None):
    lines = [json.dumps(r) for r in rows]
    if blank_after is not None:
        lines.insert(blank_after, "")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.mark.parametrize("kind", ["jsonl", "json", "parquet", "saved_dataset", "saved_dict"])
def test_file_source_reads_every_format(tmp_path, kind):
    path = tmp_path / f"train.{kind}"
    if kind == "jsonl":
        write_jsonl(path, ROWS)
    elif kind == "json":
        path.write_text(json.dumps(ROWS))
    elif kind == "parquet":
        Dataset.from_list(ROWS).to_parquet(str(path))
    elif kind == "saved_dataset":
        Dataset.from_list(ROWS).save_to_disk(str(path))
    else:
        DatasetDict({"train": Dataset.from_list(ROWS), "test": Dataset.from_list(ROWS[:2])}).save_to_disk(str(path))
    source = FileSource(str(path))
    assert source.train().to_list() == ROWS
    assert (source.validation() is None) == (kind != "saved_dict")
    if kind == "saved_dict":
        assert source.validation().to_list() == ROWS[:2]
        assert source.split_name(VALIDATION) == f"{path} (validation split)"


def test_jsonl_rows_are_named_by_line_and_other_files_by_position(tmp_path):
    source = FileSource(write_jsonl(tmp_path / "train.jsonl", ROWS, blank_after=1), str(tmp_path / "val.parquet"))
    Dataset.from_list(ROWS).to_parquet(str(tmp_path / "val.parquet"))
    assert len(source.train()) == 4 and len(source.validation()) == 4
    assert [source.row_label(TRAIN, i) for i in range(3)] == ["line 1", "line 3", "line 4"]  # line 2 is blank
    assert source.row_label(VALIDATION, 0) == "row 1"
    assert source.split_name(TRAIN) == str(tmp_path / "train.jsonl")
    assert source.split_name(VALIDATION) == str(tmp_path / "val.parquet")


def test_a_malformed_jsonl_line_is_named(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n" + json.dumps(ROWS[1]) + "\n" + '{"prompt": "a", "chosen": \n')
    with pytest.raises(InputError, match=r"train.jsonl line 3 is not valid JSON \(Expecting value at column 27\)"):
        FileSource(str(path)).train()
    path.write_text(json.dumps(ROWS[0]) + "\n[1, 2]\n")
    with pytest.raises(InputError, match="train.jsonl line 2 is a JSON list, not an object"):
        FileSource(str(path)).train()
    path.write_text("\n")
    with pytest.raises(InputError, match="train.jsonl has no rows"):
        FileSource(str(path)).train()


def test_missing_or_unsupported_files_name_the_option(tmp_path):
    with pytest.raises(InputError, match=r"^data.source.train_path '.*nope.jsonl' does not exist$"):
        FileSource(str(tmp_path / "nope.jsonl")).train()
    (tmp_path / "train.csv").write_text("prompt,chosen,rejected\n")
    with pytest.raises(InputError, match="not a .jsonl, .json or .parquet file"):
        FileSource(str(tmp_path / "train.csv")).train()
    with pytest.raises(InputError, match="not one written by datasets' save_to_disk"):
        FileSource(str(tmp_path)).train()
    source = FileSource(write_jsonl(tmp_path / "train.jsonl", ROWS), str(tmp_path / "val.jsonl"))
    with pytest.raises(InputError, match=r"^data.source.val_path '.*val.jsonl' does not exist$"):
        source.validation()


def test_hub_source_loads_a_local_folder_offline(tmp_path):
    folder = tmp_path / "my-hub-dataset"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", ROWS)
    write_jsonl(folder / "test.jsonl", ROWS[:1])
    source = HubSource(str(folder), val_split="test")
    assert source.train().to_list() == ROWS
    assert source.validation().to_list() == ROWS[:1]
    assert source.split_name(VALIDATION) == f"{folder} split 'test'"
    assert HubSource(str(folder)).validation() is None
    with pytest.raises(InputError, match="split 'dev' could not be loaded"):
        HubSource(str(folder), train_split="dev").train()


def test_synthetic_preferences_are_reproducible_and_split_by_seed():
    source = SyntheticPreferences(num_train=30, num_val=10, seed=3, bt_scale=5.0, length_weight=0.5, target_length=4)
    train, val = source.train(), source.validation()
    assert len(train) == 30 and len(val) == 10
    assert train.column_names == ["prompt", "chosen", "rejected"]
    assert (
        train.to_list()
        == SyntheticPreferences(num_train=30, seed=3, bt_scale=5.0, length_weight=0.5, target_length=4)
        .train()
        .to_list()
    )
    assert val.to_list() != train.to_list()[:10]  # drawn with another seed
    assert source.world.bt_scale == 5.0 and source.world.gold.target_length == 4
    assert SyntheticPreferences(num_val=0).validation() is None
