"""The reference cache: computed once per (reference weights, tokenized data, precision), found again by any run
that shares them whatever its objective or beta, missed when one of them changes; cached runs load no reference;
a policy scored in another layout than the cache starts exactly at log 2; the user's own columns are honoured."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
from test_cli import small  # the quickstart shrunk to a few steps

from lit_daa.cli import main
from lit_daa.data.datamodule import PreferenceDataModule
from lit_daa.layouts import Packed
from lit_daa.module import DAAModule
from lit_daa.objectives import DPO
from lit_daa.reference import CachedReference
from lit_daa.reference_cache import fill_reference_cache
from lit_daa.scoring import score_pairs
from lit_daa.synthetic.source import SyntheticPreferences


@pytest.fixture
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LIT_DAA_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "reference_logps"


def precompute(tmp_path: Path, capsys: pytest.CaptureFixture, *extra: str) -> dict[str, str]:
    """Run `lit-daa precompute-reference` on the small quickstart; {split: "found" | "computed"}."""
    assert main(["precompute-reference", *small(tmp_path, *extra)[1:]]) == 0
    out = capsys.readouterr().out
    return dict(re.findall(r"of \d+ (\w+) pairs: (found|computed)", out))


def test_cache_hits_for_any_objective_and_misses_for_another_reference_data_or_precision(
    tmp_path: Path, capsys: pytest.CaptureFixture, own_cache: Path
) -> None:
    computed = {"train": "computed", "val": "computed"}
    found = {"train": "found", "val": "found"}
    assert precompute(tmp_path, capsys) == computed
    assert precompute(tmp_path, capsys) == found
    assert precompute(tmp_path, capsys, "--model.objective=IPO", "--model.objective.beta=0.5") == found
    assert precompute(tmp_path, capsys, "--data.layout=Packed") == found  # the layout is not in the key
    files = len(list(own_cache.glob("*.pt")))
    # truncation that changes the tokens (max_length), another precision, another reference: new entries
    assert precompute(tmp_path, capsys, "--data.max_length=12", "--data.max_prompt_length=6") == computed
    assert precompute(tmp_path, capsys, "--model.reference_dtype=bfloat16") == computed
    assert precompute(tmp_path, capsys, "--model.reference=embedded:neox-mini") == computed
    assert len(list(own_cache.glob("*.pt"))) == files + 6


def test_cached_fit_loads_no_reference_and_trains_like_the_uncached_one(
    tmp_path: Path, capsys: pytest.CaptureFixture, own_cache: Path
) -> None:
    assert main(small(tmp_path / "plain")) == 0
    plain = capsys.readouterr().out
    assert main(small(tmp_path / "cached", "--model.cached_reference=true")) == 0
    cached = capsys.readouterr().out
    assert len(list(own_cache.glob("*.pt"))) == 2  # the first cached run fills the cache (train, val) for the rest

    def metrics(out: str) -> list[float]:
        return [float(v) for v in re.findall(r"(?:accuracy|val/loss|margins): (\S+)", out)]

    assert len(metrics(plain)) == 3
    assert metrics(plain) == pytest.approx(metrics(cached), abs=1e-4)
    module = DAAModule(objective=DPO(0.1), cached_reference=True)
    module.configure_model()
    assert isinstance(module.reference, CachedReference) and not list(module.reference.parameters())


def test_packed_policy_against_a_concatenated_cache_starts_at_log_2(own_cache: Path) -> None:
    source = SyntheticPreferences(num_train=24, num_val=0, seed=4)
    dm = PreferenceDataModule(source=source, val_fraction=0.0, batch_size=24, layout=Packed(token_budget=96))
    dm.prepare_data()
    dm.setup("fit")
    module = DAAModule(objective=DPO(0.1), cached_reference=True)
    module.configure_model()
    concatenated = PreferenceDataModule(source=source, val_fraction=0.0, batch_size=24)
    concatenated.setup("fit")
    (result,) = fill_reference_cache(dm, "embedded:neox-tiny", "float32", torch.device("cpu"), module._load_reference)
    assert not result.hit
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape[0] < 24  # several pairs per row
    scored = score_pairs(module.policy, module.reference, module.objective, batch)
    # a fresh policy equals its reference: every pair's loss is log 2, so no half leaked into another's offsets
    assert torch.allclose(scored.output.losses, torch.full((24,), math.log(2.0)), atol=1e-5)


def test_reference_columns_in_the_users_data_are_used(tmp_path: Path) -> None:
    texts = [("the cat", "sat down", "ran", -1.5, -2.0), ("a dog", "barked", "slept well", -3.0, -4.5)]
    keys = ("prompt", "chosen", "rejected", "ref_chosen_logps", "ref_rejected_logps")
    rows = [dict(zip(keys, values, strict=True)) for values in texts]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    dm = PreferenceDataModule(train_path=str(path), val_fraction=0.0, batch_size=2)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    by_index = dict(zip(batch["index"].tolist(), range(2), strict=True))
    expected = [rows[i]["ref_chosen_logps"] for i in by_index] + [rows[i]["ref_rejected_logps"] for i in by_index]
    assert batch["ref_logps"].tolist() == expected
