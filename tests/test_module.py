"""DAAModule's loss, rewards and metrics against an independent computation on the same model and pairs."""

from __future__ import annotations

import math

import pytest
import torch
from lightning.pytorch import Trainer

from lit_daa.data.datamodule import PreferenceDataModule
from lit_daa.metrics import RewardAccuracy, preference_metrics
from lit_daa.module import DAAModule
from lit_daa.objectives import DPO, IPO, SLiC
from lit_daa.synthetic.source import SyntheticPreferences


def naive_sequence_logp(model, tokenizer, prompt: str, response: str) -> float:
    """log pi(response + EOS | prompt), one unpadded sequence at a time, in float64."""
    p = tokenizer(prompt, add_special_tokens=False).input_ids
    r = tokenizer(response, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    with torch.no_grad():
        logits = model(torch.tensor([p + r])).logits[0].double()
    lp = torch.log_softmax(logits, -1)
    return sum(lp[len(p) - 1 + i, t].item() for i, t in enumerate(r))


def test_loss_rewards_and_accuracy_match_independent_computation() -> None:
    source = SyntheticPreferences(num_train=12, num_val=0, seed=3)
    rows = source.train().to_list()
    dm = PreferenceDataModule(source=source, val_fraction=0.0, batch_size=12, max_length=64, max_prompt_length=32)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    beta = 0.7
    module = DAAModule(objective=DPO(beta))
    module.configure_model()
    with torch.no_grad():  # move the policy away from the reference so rewards are not all zero
        for p in module.policy.parameters():
            p.add_(0.05 * torch.randn_like(p))
    scored = module._score(batch)
    out, values = scored.output, scored.metric_values()

    ref = module.reference.model
    expected_losses, expected_acc = [], []
    for j, i in enumerate(batch["index"].tolist()):
        row = rows[i]
        pc = naive_sequence_logp(module.policy, module.tokenizer, row["prompt"], row["chosen"])
        pr = naive_sequence_logp(module.policy, module.tokenizer, row["prompt"], row["rejected"])
        rc = naive_sequence_logp(ref, module.tokenizer, row["prompt"], row["chosen"])
        rr = naive_sequence_logp(ref, module.tokenizer, row["prompt"], row["rejected"])
        u = beta * ((pc - rc) - (pr - rr))
        expected_losses.append(math.log1p(math.exp(-u)))
        expected_acc.append(float(pc - rc > pr - rr))
        assert abs(values["chosen_rewards"][j].item() - beta * (pc - rc)) < 1e-4
        assert abs(values["policy_rejected"][j].item() - pr) < 1e-4
    assert torch.allclose(out.losses.double(), torch.tensor(expected_losses, dtype=torch.float64), atol=1e-4)
    acc = RewardAccuracy()
    acc.update(**values)
    assert acc.compute().item() == pytest.approx(sum(expected_acc) / len(expected_acc))


def test_sum_reduced_metrics_are_exact_over_uneven_batches() -> None:
    torch.manual_seed(0)
    chosen, rejected = torch.randn(11), torch.randn(11)
    losses = torch.rand(11)
    one, split = preference_metrics("val/"), preference_metrics("val/")
    kw = lambda s: dict(  # noqa: E731
        losses=losses[s],
        chosen_rewards=chosen[s],
        rejected_rewards=rejected[s],
        policy_chosen=chosen[s],
        policy_rejected=rejected[s],
    )
    one.update(**kw(slice(0, 11)))
    for s in (slice(0, 2), slice(2, 9), slice(9, 11)):  # like three ranks or batches of different sizes
        split.update(**kw(s))
    a, b = one.compute(), split.compute()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k]), k
    assert a["val/rewards/accuracies"].item() == (chosen > rejected).float().mean().item()
    assert torch.allclose(a["val/rewards/margins"], (chosen - rejected).mean())


def test_trainer_validate_logs_the_documented_names(tmp_path) -> None:
    dm = PreferenceDataModule(
        source=SyntheticPreferences(num_train=16, num_val=16), batch_size=8, max_length=64, max_prompt_length=32
    )
    trainer = Trainer(default_root_dir=tmp_path, logger=False, enable_progress_bar=False, enable_model_summary=False)
    for objective in (DPO(0.1), IPO(0.5), SLiC(0.1)):
        metrics = trainer.validate(DAAModule(objective=objective), datamodule=dm, verbose=False)[0]
        for name in (
            "loss",
            "rewards/accuracies",
            "rewards/margins",
            "rewards/chosen",
            "rewards/rejected",
            "logps/chosen",
            "logps/rejected",
        ):
            assert f"val/{name}" in metrics
        assert not any("kl" in k.lower() for k in metrics)
    # policy == reference at start: every implicit reward is 0, DPO loss is log 2
    metrics = trainer.validate(DAAModule(objective=DPO(0.1)), datamodule=dm, verbose=False)[0]
    assert abs(metrics["val/loss"] - math.log(2)) < 1e-5 and metrics["val/rewards/margins"] == 0.0
