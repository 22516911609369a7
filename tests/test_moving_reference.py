"""TR-DPO's moving reference: hard and soft updates against their formulas, refusals in one sentence, exact
resume (the moved reference is checkpointed), and a tiny sweep with DPO, RPO and TR-DPO end to end."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from safetensors.torch import load_file
from test_cli import small

from lit_daa.cli import main
from lit_daa.data.datamodule import PreferenceDataModule
from lit_daa.models import load_causal_lm
from lit_daa.module import DAAModule
from lit_daa.moving_reference import MovingReference
from lit_daa.objectives import DPO
from lit_daa.synthetic.source import SyntheticPreferences


def fit(steps: int, callback: MovingReference) -> DAAModule:
    data = PreferenceDataModule(source=SyntheticPreferences(num_train=64, num_val=0), val_fraction=0.0, batch_size=8)
    module = DAAModule(objective=DPO(0.5), optimizer=lambda p: torch.optim.AdamW(p, lr=1e-2))
    trainer = L.Trainer(
        accelerator="cpu", max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[callback], limit_val_batches=0,
    )  # fmt: skip
    trainer.fit(module, datamodule=data)
    return module


def test_hard_update_copies_the_policy_and_soft_update_mixes() -> None:
    hard = MovingReference(tau=2, alpha=1.0)
    module = fit(2, hard)
    assert hard.updates == 1
    for ref, pol in zip(module.reference.model.parameters(), module.policy.parameters(), strict=True):
        assert torch.equal(ref, pol)
    soft = MovingReference(tau=3, alpha=0.25)
    module = fit(3, soft)
    start = load_causal_lm("embedded:neox-tiny")
    for ref, pol, init in zip(module.reference.model.parameters(), module.policy.parameters(), start.parameters(),
                              strict=True):  # fmt: skip
        assert torch.allclose(ref, 0.75 * init + 0.25 * pol, atol=1e-6)
    assert not torch.equal(next(module.reference.model.parameters()), next(start.parameters()))


TRDPO = {"class_path": "lit_daa.moving_reference.MovingReference", "init_args": {"tau": 3, "alpha": 0.5}}


@pytest.mark.parametrize(
    ("extra", "sentence"),
    [
        (["--config", "configs/presets/lora.yaml"], "a LoRA policy's reference is its own base weights"),
        (["--model.cached_reference=true"], "its log-probs are cached, so there is no model to move"),
    ],
)
def test_a_reference_that_cannot_move_is_refused(tmp_path: Path, capsys, extra: list[str], sentence: str) -> None:
    root = Path(__file__).resolve().parents[1]
    extra = [str(root / e) if e.endswith(".yaml") else e for e in extra]
    argv = small(tmp_path, "--trainer.callbacks+=" + json.dumps(TRDPO), *extra)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"MovingReference (TR-DPO) needs a reference model of its own, but {sentence}" in err


def test_resume_restores_the_moved_reference_exactly(tmp_path: Path, capsys) -> None:
    callback = "--trainer.callbacks+=" + json.dumps(TRDPO)
    assert main(small(tmp_path / "long", callback, "--trainer.max_steps=8")) == 0
    assert main(small(tmp_path / "short", callback, "--trainer.max_steps=4")) == 0
    ckpt = torch.load(tmp_path / "short" / "checkpoints" / "last.ckpt", weights_only=False)
    assert any(k.startswith("reference.") for k in ckpt["state_dict"])  # saved while it moves
    assert main(small(tmp_path / "short", callback, "--trainer.max_steps=8", "--ckpt_path=last")) == 0
    a = load_file(tmp_path / "long" / "hf_policy" / "model.safetensors")
    b = load_file(tmp_path / "short" / "hf_policy" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)  # equal only if the resumed run had the moved reference


def test_tiny_sweep_with_dpo_rpo_and_trdpo(tmp_path: Path, capsys) -> None:
    from test_sweep import tiny_sweep_yaml

    values = tiny_sweep_yaml(tmp_path / "out")
    values["models"] = [{"name": "tiny", "reference": "embedded:neox-tiny"}]
    values["objectives"] = [
        {"objective": "DPO", "betas": [0.1]},
        {"objective": "RPO", "betas": [0.1], "options": {"alpha": 0.5}},
        {"objective": "DPO", "betas": [0.1], "name": "TRDPO", "overrides": {"trainer.callbacks+": TRDPO}},
    ]
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump(values, sort_keys=False))
    assert main(["sweep", "--config", str(config)]) == 0
    import pandas as pd

    table = pd.read_csv(tmp_path / "out" / "results.csv")
    assert set(table["objective"]) >= {"DPO", "RPO", "TRDPO"}
    runs = tmp_path / "out" / "runs"

    def saved_keys(run: str) -> list[str]:
        return list(torch.load(runs / run / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"])

    # the TR-DPO run's reference moved, so it was checkpointed; the plain DPO run's was not
    assert any(k.startswith("reference.") for k in saved_keys("tiny-TRDPO-beta0.1"))
    assert not any(k.startswith("reference.") for k in saved_keys("tiny-DPO-beta0.1"))
    assert (runs / "tiny-RPO-beta0.1" / "DONE.json").is_file()
