"""The sweep's held-out metrics of a checkpoint (`lit_daa.sweep.heldout`), for pairs and for unpaired rows, read on a
policy that equals its reference: every log-ratio is 0, so the values are known by hand."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from lit_daa.models import load_causal_lm
from lit_daa.sweep.heldout import HeldOutPairs

ROOT = Path(__file__).resolve().parents[1]


def _fit_yaml(tmp_path: Path, objective: dict, unpaired: bool) -> Path:
    config = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    config["model"]["objective"] = objective
    data = config["data"]
    data["source"]["init_args"] = {**data["source"].get("init_args", {}), "num_train": 16, "num_val": 12}
    data["unpaired"] = unpaired
    path = tmp_path / "fit.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def model():
    return load_causal_lm("embedded:neox-tiny")


def test_pairs_at_the_reference(tmp_path: Path, model) -> None:
    held = HeldOutPairs(
        _fit_yaml(tmp_path, {"class_path": "lit_daa.objectives.DPO", "init_args": {"beta": 0.1}}, False)
    )
    values = held.metrics(model, model)
    assert values["val_loss"] == pytest.approx(math.log(2), abs=1e-6)  # -log sigmoid(0)
    assert values["val_margin"] == pytest.approx(0.0, abs=1e-6)
    assert values["chosen_logratio"] == pytest.approx(0.0, abs=1e-6)
    assert 0.0 <= values["val_accuracy"] <= 1.0


def test_unpaired_rows_at_the_reference(tmp_path: Path, model) -> None:
    """KTO at the reference: rewards 0 and z0 = 0, so each row's loss is w (1 - sigmoid(0)) = 0.5 with weights 1;
    rows have no pairwise accuracy, and the margin is desirable minus undesirable reward."""
    kto = {"class_path": "lit_daa.objectives.KTO", "init_args": {"beta": 0.1}}
    values = HeldOutPairs(_fit_yaml(tmp_path, kto, True)).metrics(model, model)
    assert values["val_loss"] == pytest.approx(0.5, abs=1e-6)
    assert values["val_margin"] == pytest.approx(0.0, abs=1e-6)
    assert values["chosen_logratio"] == pytest.approx(0.0, abs=1e-6)
    assert math.isnan(values["val_accuracy"])
