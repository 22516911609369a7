"""KTO and APO-zero unpaired give TRL 1.16's `KTOTrainer` loss on the same batch, model and reference.

TRL computes its loss inside `KTOTrainer.compute_loss` from the models; lit-daa's objectives receive the log-probs
of the very batch TRL built (its rows and its mismatched KL rows: same tokens, masks and padding), scored by
lit-daa's own `response_logps`. Runs only where trl is installed (`pip install -e ".[bench]"`).
"""

from __future__ import annotations

import pytest
import torch

trl = pytest.importorskip("trl")

from plugins.trl_runs import CPU_ARGS, batch_logps, nudge  # noqa: E402

from lit_daa.models import load_causal_lm, load_tokenizer  # noqa: E402
from lit_daa.objectives import KTO, APOZeroUnpaired, RowLogps  # noqa: E402
from lit_daa.synthetic.world import SyntheticWorld  # noqa: E402

BETA, DESIRABLE, UNDESIRABLE = 0.3, 1.3, 0.7
CASES = {"kto": KTO, "apo_zero_unpaired": APOZeroUnpaired}


@pytest.fixture(scope="module")
def models():
    from datasets import Dataset

    torch.manual_seed(0)
    policy = load_causal_lm("embedded:neox-tiny")
    reference = load_causal_lm("embedded:neox-tiny").eval().requires_grad_(False)
    nudge(reference)  # away from the policy, so the KL estimate is positive, not clamped
    pairs = SyntheticWorld().pairs(6, 3)
    # 4 desirable and 6 undesirable rows: unequal counts, as unpaired data has them
    rows = [{"prompt": p["prompt"], "completion": p["chosen"], "label": True} for p in pairs[:4]]
    rows += [{"prompt": p["prompt"], "completion": p["rejected"], "label": False} for p in pairs]
    return policy, reference, load_tokenizer("embedded:neox-tiny"), Dataset.from_list(rows)


@pytest.mark.parametrize("loss_type", list(CASES))
def test_loss_equals_trls(models, loss_type: str, tmp_path) -> None:
    policy, reference, tokenizer, dataset = models
    config = trl.KTOConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=len(dataset),
        loss_type=loss_type,
        beta=BETA,
        desirable_weight=DESIRABLE,
        undesirable_weight=UNDESIRABLE,
        train_sampling_strategy="sequential",  # TRL needs it for its KL rows
        **CPU_ARGS,
    )
    trainer = trl.KTOTrainer(
        model=policy, ref_model=reference, args=config, train_dataset=dataset, processing_class=tokenizer
    )
    batch = next(iter(trainer.get_train_dataloader()))
    with torch.no_grad():
        theirs = trainer.compute_loss(policy, batch).item()
        sums, counts, ref = batch_logps(policy, reference, batch)
        kl_sums, kl_ref = sums, ref  # APO-zero unpaired reads no KL rows (TRL builds none)
        if "KL_input_ids" in batch:
            kl_sums, _, kl_ref = batch_logps(policy, reference, batch, prefix="KL_")
        logps = RowLogps(sums, ref, kl_sums, kl_ref, batch["label"].bool(), counts)
        out = CASES[loss_type](BETA, desirable_weight=DESIRABLE, undesirable_weight=UNDESIRABLE)(logps)
    if loss_type == "kto":
        assert out.kl.item() > 0.1  # the reference point is exercised, not clamped to 0
    assert out.loss.item() == pytest.approx(theirs, abs=1e-6, rel=1e-6), (loss_type, out.loss.item(), theirs)
