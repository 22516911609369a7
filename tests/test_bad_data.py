"""Bad data people actually write: precomputed reference columns (NaN, inf, null, text, one of the two), Parquet
columns of the wrong type, chat messages without content or with an unknown role, a key given twice on a JSON
line; and ValidationKL with a reference that holds no model. Each is one sentence naming the file, the line or
row and the field, before training; row faults can be skipped, file faults cannot."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_frictions import PAIRS, fit, write_jsonl

from lit_daa.cli import main
from lit_daa.data import PreferenceDataModule
from lit_daa.errors import InputError

PROMPT = "topic food : food_0 food_1 . answer :"
GOOD = {"prompt": PROMPT, "chosen": " food_3 food_4", "rejected": " music_1"}
SKIP_HINT = "(use --data.skip_bad_rows true to skip such rows; 1 row is bad)"
WITH_REF = {**GOOD, "ref_chosen_logps": -3.5, "ref_rejected_logps": -4.25}


def chat(reply: str, role: str = "user", **first: object) -> list[dict]:
    return [{"role": role, "content": "topic food :", **first}, {"role": "assistant", "content": reply}]


CHAT = {"chosen": chat("food_1 food_2"), "rejected": chat("music_3")}
NO_CONTENT = {**CHAT, "chosen": [{"role": "user"}, {"role": "assistant", "content": "food_1"}]}

pytestmark = pytest.mark.usefixtures("datasets_cache")  # fixtures in conftest.py


def load(tokenizer_dir: str, train_path: Path, **options: object) -> PreferenceDataModule:
    dm = PreferenceDataModule(
        tokenizer=tokenizer_dir, train_path=str(train_path), max_length=32, max_prompt_length=16, val_fraction=0.0,
        **options,
    )  # fmt: skip
    dm.setup("fit")
    return dm


DUPLICATE = '{"prompt": "a", "prompt": "b", "chosen": "c", "rejected": "d"}\n'


def text(path: Path, content: str) -> Path:
    path.write_text(content)
    return path


def parquet(path: Path, **columns: list) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


# (what the third row is, the field named, the problem): each a row fault, so the sentence names line 3.
ROW_FAULTS = [
    pytest.param({**WITH_REF, "ref_chosen_logps": float("nan")}, "ref_chosen_logps", "expected a finite number, "
                 "found nan", id="ref-nan"),
    pytest.param({**WITH_REF, "ref_rejected_logps": float("-inf")}, "ref_rejected_logps", "expected a finite "
                 "number, found -inf", id="ref-inf"),
    pytest.param({**WITH_REF, "ref_chosen_logps": None}, "ref_chosen_logps", "missing value; every row needs both "
                 "precomputed reference log-probs", id="ref-null"),
    pytest.param({**WITH_REF, "ref_chosen_logps": "n/a"}, "ref_chosen_logps", "expected a number, found str",
                 id="ref-text"),
    pytest.param(NO_CONTENT, "chosen[0].content", "missing value; every message needs a 'role' and a 'content' "
                 "string", id="chat-no-content"),
    pytest.param({"chosen": chat("food_1", role="robot"), "rejected": chat("music_3", role="robot")},
                 "chosen[0].role", "unknown role 'robot'; roles accepted: system, user, assistant", id="chat-robot"),
]  # fmt: skip


def _rows_around(bad: dict) -> list[dict]:
    good = CHAT if "prompt" not in bad else (WITH_REF if "ref_chosen_logps" in bad else GOOD)
    return [good, good, bad, good]


@pytest.mark.parametrize(("bad", "field", "problem"), ROW_FAULTS)
def test_a_bad_row_is_named_by_file_line_and_field(tokenizer_dir, tmp_path, bad, field, problem):
    path = write_jsonl(tmp_path / "train.jsonl", _rows_around(bad))
    with pytest.raises(InputError) as caught:
        load(tokenizer_dir, path)
    assert str(caught.value) == f"{path} line 3, field '{field}': {problem} {SKIP_HINT}"


@pytest.mark.parametrize(("bad", "field", "problem"), ROW_FAULTS[:1] + ROW_FAULTS[-2:])
def test_row_faults_can_be_skipped(tokenizer_dir, tmp_path, bad, field, problem):
    dm = load(tokenizer_dir, write_jsonl(tmp_path / "train.jsonl", _rows_around(bad)), skip_bad_rows=True)
    assert (dm.report.train.rows, dm.report.train.skipped) == (4, 1)
    assert sorted(dm.train_dataset["index"]) == [0, 1, 3]


# (the file, the sentence after its path): faults of the whole file, refused even with skip_bad_rows.
FILE_FAULTS = [
    pytest.param(lambda d: write_jsonl(d / "t.jsonl", [{**GOOD, "ref_chosen_logps": -1.0}] * 4),
                 " has the column 'ref_chosen_logps' but not 'ref_rejected_logps'; give both precomputed reference "
                 "columns (and they are used), or neither (and the reference model computes both)",
                 id="ref-one-column"),
    pytest.param(lambda d: parquet(d / "t.parquet", **{k: [v] * 4 for k, v in GOOD.items()},
                                   ref_chosen_logps=["-1"] * 4, ref_rejected_logps=[-2.0] * 4),
                 " column 'ref_chosen_logps' has type string, expected a number (the reference model's summed "
                 "log-probability of the response)", id="ref-text-column"),
    pytest.param(lambda d: parquet(d / "t.parquet", prompt=[PROMPT] * 4, chosen=[1, 2, 3, 4], rejected=["a"] * 4),
                 " column 'chosen' has type int64, expected string for prompt/chosen/rejected data", id="parquet-int"),
    pytest.param(lambda d: parquet(d / "t.parquet", prompt=[PROMPT] * 4, chosen=[["food_1"]] * 4,
                                   rejected=["a"] * 4),
                 " column 'chosen' has type list<string>, expected string for prompt/chosen/rejected data",
                 id="parquet-list"),
    pytest.param(lambda d: text(d / "t.jsonl", json.dumps(GOOD) + "\n\n" + DUPLICATE),
                 " line 3 has the key 'prompt' twice in one object; keep one of them", id="jsonl-duplicate-key"),
]  # fmt: skip


@pytest.mark.parametrize(("write", "sentence"), FILE_FAULTS)
def test_a_bad_file_is_named_even_when_skipping_bad_rows(tokenizer_dir, tmp_path, write, sentence):
    path = write(tmp_path)
    with pytest.raises(InputError) as caught:
        load(tokenizer_dir, path, skip_bad_rows=True)
    assert str(caught.value) == f"{path}{sentence}"


def test_good_reference_columns_still_load(tokenizer_dir, tmp_path):
    """Whole numbers are log-probs too (JSON writes -4.0 as -4 in some tools)."""
    dm = load(tokenizer_dir, write_jsonl(tmp_path / "t.jsonl", [WITH_REF, {**WITH_REF, "ref_chosen_logps": -4}]))
    assert dm.train_dataset["ref_chosen_logps"] == [-3.5, -4.0]


def test_through_the_cli_a_bad_reference_value_exits_2_before_training(tmp_path: Path, capsys) -> None:
    rows = [dict(p, ref_chosen_logps=-3.0, ref_rejected_logps=-4.0) for p in PAIRS]
    rows[4]["ref_chosen_logps"] = float("nan")
    path = write_jsonl(tmp_path / "ref.jsonl", rows)
    assert main(fit(tmp_path / "run", f"--data.train_path={path}")) == 2
    err = capsys.readouterr().err
    assert f"lit-daa: error: {path} line 5, field 'ref_chosen_logps': expected a finite number, found nan" in err
    assert "Traceback" not in err
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--model.cached_reference=true"], "with model.cached_reference true the reference holds no model"),
        (["--model.objective=SimPO"], "the objective SimPO uses none, so the run holds no model"),
    ],
    ids=["cached-reference", "reference-free"],
)
def test_validation_kl_without_a_reference_model_is_refused_at_the_start(tmp_path: Path, capsys, options, named):
    path = write_jsonl(tmp_path / "pairs.jsonl", PAIRS)
    kl = ["--trainer.callbacks+=lit_daa.validation_kl.ValidationKL", "--trainer.callbacks.num_prompts=4"]
    assert main(fit(tmp_path / "run", f"--data.train_path={path}", *kl, *options)) == 2
    err = capsys.readouterr().err
    assert "lit-daa: error: ValidationKL scores the policy's samples under the reference, and " in err
    assert named in err
    assert "Traceback" not in err
    assert not (tmp_path / "run" / "checkpoints").exists()  # refused before the first training step
