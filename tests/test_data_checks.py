"""Bad rows named by file, row and field; skipping them; and the truncation rule, through the data module."""

import json

import pytest
from datasets import Dataset

from lit_daa.data import PreferenceDataModule, TruncationRule
from lit_daa.data.bad_rows import BadRow
from lit_daa.errors import InputError

PROMPT = "topic food : food_0 food_1 food_2 . answer :"  # 9 tokens of the word tokenizer
GOOD = {"prompt": PROMPT, "chosen": " food_3 food_4", "rejected": " music_1"}
SKIP_HINT = "(use --data.skip_bad_rows true to skip such rows; 1 row is bad)"


pytestmark = pytest.mark.usefixtures("datasets_cache")  # fixtures in conftest.py


def jsonl(tmp_path, rows, name="train.jsonl") -> str:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def load(tokenizer_dir, train_path, **options) -> PreferenceDataModule:
    options = {"max_length": 32, "max_prompt_length": 16, "val_fraction": 0.0, **options}
    dm = PreferenceDataModule(tokenizer=tokenizer_dir, train_path=train_path, **options)
    dm.setup("fit")
    return dm


def test_the_rule_on_the_docstring_example():
    rule = TruncationRule(max_length=5, max_prompt_length=2)
    assert rule.apply([1, 2, 3], [4, 5, 6], [7], eos=0) == ([2, 3], [4, 5, 0], [7, 0], True)
    assert rule.apply([1], [4], [7], eos=0) == ([1], [4, 0], [7, 0], False)
    with pytest.raises(BadRow, match="field 'prompt': 3 tokens, more than max_prompt_length 2"):
        TruncationRule(max_length=5, max_prompt_length=2, truncate_prompts=False).apply([1, 2, 3], [4], [7], eos=0)
    with pytest.raises(InputError, match="data.max_prompt_length \\(8\\) must be at least 1 and below data.max_length"):
        TruncationRule(max_length=8, max_prompt_length=8)


def test_truncation_through_the_data_module(tokenizer_dir, tmp_path):
    short = {"prompt": "topic food :", "chosen": " food_1", "rejected": " food_2"}
    dm = load(tokenizer_dir, jsonl(tmp_path, [GOOD, short]), max_length=8, max_prompt_length=4)
    tok = dm.tokenizer
    ids = lambda text: tok(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    eos = tok.eos_token_id
    long_row, short_row = dm.train_dataset[0], dm.train_dataset[1]
    assert long_row["prompt_ids"] == ids("food_2 . answer :")  # the prompt's last 4 tokens
    assert long_row["chosen_ids"] == [*ids("food_3 food_4"), eos]  # fits: 4 + 3 = 7 tokens
    assert long_row["rejected_ids"] == [*ids("music_1"), eos]
    assert short_row == {"index": 1, "prompt_ids": ids("topic food :"), "chosen_ids": [*ids("food_1"), eos],
                         "rejected_ids": [*ids("food_2"), eos], "truncated": False}  # fmt: skip
    assert dm.report.train.truncated == 1

    dm = load(tokenizer_dir, jsonl(tmp_path, [GOOD]), max_length=6, max_prompt_length=4)
    assert dm.train_dataset[0]["chosen_ids"] == [*ids("food_3"), eos]  # cut from the right, EOS kept


@pytest.mark.parametrize(
    ("bad", "options", "problem"),
    [
        ({"prompt": PROMPT, "rejected": " music_1"}, {}, "field 'chosen': missing value"),
        ({**GOOD, "chosen": 5}, {}, "field 'chosen': expected a string, found int"),
        ({**GOOD, "rejected": "  "}, {}, "field 'rejected': empty response"),
        ({**GOOD, "rejected": GOOD["chosen"]}, {}, "field 'rejected': the same text as the chosen response"),
        (
            GOOD,
            {"max_prompt_length": 4, "truncate_prompts": False},
            "field 'prompt': 9 tokens, more than max_prompt_length 4",
        ),
    ],
)
def test_a_bad_row_stops_loading_with_one_sentence(tokenizer_dir, tmp_path, bad, options, problem):
    short = {"prompt": "topic food :", "chosen": " food_1", "rejected": " food_2"}
    path = jsonl(tmp_path, [short, short, bad, short])
    with pytest.raises(InputError) as caught:
        load(tokenizer_dir, path, **options)
    assert str(caught.value) == f"{path} line 3, {problem} {SKIP_HINT}"


def test_skip_bad_rows_drops_and_counts_them(tokenizer_dir, tmp_path):
    rows = [GOOD, {**GOOD, "chosen": ""}, GOOD, {**GOOD, "prompt": None}, {**GOOD, "rejected": GOOD["chosen"]}, GOOD]
    path = jsonl(tmp_path, rows)
    with pytest.raises(InputError, match=r"line 2, field 'chosen': empty response \(.*; 3 rows are bad\)$"):
        load(tokenizer_dir, path)
    dm = load(tokenizer_dir, path, skip_bad_rows=True, max_prompt_length=4)
    assert list(dm.train_dataset["index"]) == [0, 2, 5]
    report = dm.report.train
    assert (report.rows, report.bad, report.skipped, report.kept, report.truncated) == (6, 3, 3, 3, 3)
    assert report.summary() == f"{path}: 6 rows, skipped 3 bad rows, truncated 3 rows"
    assert "problem" not in dm.train_dataset.column_names


def test_rows_of_other_formats_are_counted_from_one(tokenizer_dir, tmp_path):
    path = str(tmp_path / "train.parquet")
    Dataset.from_list([GOOD, {**GOOD, "rejected": " "}]).to_parquet(path)
    with pytest.raises(InputError, match=f"^{path} row 2, field 'rejected': empty response"):
        load(tokenizer_dir, path)


def test_nothing_left_to_train_on(tokenizer_dir, tmp_path):
    path = jsonl(tmp_path, [{**GOOD, "chosen": ""}, {**GOOD, "chosen": ""}])
    with pytest.raises(
        InputError, match=r"line 1, field 'chosen': empty response \(and every one of its 2 rows is bad"
    ):
        load(tokenizer_dir, path, skip_bad_rows=True)


def test_a_misspelled_column_names_the_file(tokenizer_dir, tmp_path):
    path = jsonl(tmp_path, [{"prompt": PROMPT, "choosen": " a", "rejected": " b"}])
    with pytest.raises(InputError, match=f"^{path} has no column 'chosen' .*did you mean 'choosen'"):
        load(tokenizer_dir, path)
