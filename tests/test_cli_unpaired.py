"""`lit-daa fit` with an unpaired objective: the embedded world's unpaired view and a user's unpaired JSONL (the
refusal of unpaired rows under a paired objective is checked on the data module, in test_data_unpaired.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_cli import ROOT, small
from test_frictions import fit

from lit_daa.cli import main

KTO = str(ROOT / "configs" / "objectives" / "kto.yaml")
PROMPT = "topic food : food_0 food_1 . answer :"
ROWS = [
    {"prompt": PROMPT, "completion": " food_3 food_4", "label": True},
    {"prompt": PROMPT, "completion": " music_1 music_2", "label": False},
    {"prompt": PROMPT, "completion": " music_3", "label": False},
] * 8

pytestmark = pytest.mark.usefixtures("datasets_cache")  # fixtures in conftest.py


def test_kto_config_trains_on_the_unpaired_view(tmp_path: Path, capsys, caplog: pytest.LogCaptureFixture) -> None:
    steps = ["--trainer.max_steps=2", "--trainer.val_check_interval=2", "--data.source.init_args.num_val=8"]
    assert main(small(tmp_path, "--config", KTO, *steps)) == 0
    out = capsys.readouterr()
    assert "192 training rows, 16 validation rows" in caplog.text  # 96 + 8 pairs, each split in two
    assert "val/loss" in out.out and (tmp_path / "checkpoints" / "last.ckpt").is_file()
    card = (tmp_path / "hf_policy" / "README.md").read_text()
    assert "192 training rows" in card and "rows seen" in card  # the model card counts rows, not pairs


def test_kto_config_trains_on_an_unpaired_jsonl(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    assert main(fit(tmp_path / "run", "--config", KTO, f"--data.train_path={data}", "--data.val_fraction=0.25")) == 0
    out = capsys.readouterr()
    assert f"Tokenizing {data}" in out.err + out.out and "Traceback" not in out.err


@pytest.mark.parametrize(
    ("extra", "sentence"),
    [
        (["--model.objective", "lit_daa.objectives.KTO"], "model.objective KTO trains on unpaired rows"),
        (["--config", KTO, "--model.objective", "lit_daa.objectives.DPO"], "model.objective DPO trains on preference"),
    ],
)
def test_an_objective_of_the_other_kind_is_refused_before_the_data_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture, extra: list[str], sentence: str
) -> None:
    assert main(small(tmp_path, *extra)) == 2
    err = capsys.readouterr().err
    assert sentence in err and "Traceback" not in err and "Tokenizing" not in err
