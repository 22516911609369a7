"""The validation-time KL (`ValidationKL`): logged during a 2-step fit, equal to an independent estimate from the
evaluation code on the same prompts and weights, refused at another temperature and for a model-less reference."""

from __future__ import annotations

import math

import pytest
import torch
from lightning.pytorch import Trainer

from lit_daa.data.datamodule import PreferenceDataModule
from lit_daa.errors import InputError
from lit_daa.evaluation.kl import estimate_kl
from lit_daa.evaluation.sampling import sample
from lit_daa.models import load_tokenizer
from lit_daa.module import DAAModule
from lit_daa.objectives import DPO
from lit_daa.synthetic.source import SyntheticPreferences
from lit_daa.validation_kl import ValidationKL


def _fit(tmp_path, callback: ValidationKL, **module: object) -> tuple[Trainer, DAAModule, PreferenceDataModule]:
    dm = PreferenceDataModule(
        source=SyntheticPreferences(num_train=32, num_val=24), batch_size=8, max_length=64, max_prompt_length=32
    )
    model = DAAModule(objective=DPO(0.1), optimizer=lambda p: torch.optim.SGD(p, lr=0.5), **module)
    trainer = Trainer(
        default_root_dir=tmp_path,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        max_steps=2,
        val_check_interval=2,
        num_sanity_val_steps=0,
        callbacks=[callback],
    )
    trainer.fit(model, datamodule=dm)
    return trainer, model, dm


def test_validation_kl_is_logged_in_a_two_step_fit_and_matches_the_evaluation_estimate(tmp_path) -> None:
    torch.manual_seed(0)
    callback = ValidationKL(num_prompts=20, max_new_tokens=8, batch_size=8, seed=3)
    trainer, model, dm = _fit(tmp_path, callback)
    logged = {
        k: float(v) for k, v in trainer.callback_metrics.items() if k in ("val/kl", "val/kl_stderr", "val/sqrt_kl")
    }
    assert set(logged) == {"val/kl", "val/kl_stderr", "val/sqrt_kl"}
    assert logged["val/kl"] > 0.0  # two SGD steps at lr 0.5 moved the policy away from the reference
    assert logged["val/sqrt_kl"] == pytest.approx(math.sqrt(logged["val/kl"]), rel=1e-6)
    # independently: the evaluation pipeline on the same 20 prompts as text, the same weights and seed
    tokenizer = load_tokenizer(dm.tokenizer_name)
    prompts = [tokenizer.decode(dm.val_dataset[i]["prompt_ids"]) for i in range(20)]
    samples = sample(model.policy, tokenizer, prompts, max_new_tokens=8, batch_size=8, seed=3)
    assert samples.prompt_ids == [list(dm.val_dataset[i]["prompt_ids"]) for i in range(20)]
    estimate = estimate_kl(model.policy, model.reference.model, samples, batch_size=8)
    assert logged["val/kl"] == pytest.approx(estimate.mean, abs=1e-4)
    assert logged["val/kl_stderr"] == pytest.approx(estimate.stderr, abs=1e-4)


def test_validation_kl_refuses_another_temperature_and_a_cached_reference(tmp_path) -> None:
    with pytest.raises(InputError, match="temperature must be 1.0"):
        ValidationKL(temperature=0.7)
    with pytest.raises(InputError, match="holds no model to score new samples"):
        _fit(tmp_path, ValidationKL(num_prompts=4, max_new_tokens=4), cached_reference=True)


def test_the_documented_command_logs_val_kl(tmp_path, capsys: pytest.CaptureFixture) -> None:
    from test_cli import small

    from lit_daa.cli import main

    argv = small(tmp_path, "--trainer.max_steps=2", "--trainer.val_check_interval=2")
    argv += ["--trainer.callbacks+=lit_daa.validation_kl.ValidationKL", "--trainer.callbacks.num_prompts=8"]
    argv += ["--trainer.callbacks.max_new_tokens=6"]
    assert main(argv) == 0
    assert "val/kl" in capsys.readouterr().out
