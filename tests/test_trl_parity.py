"""Each objective that TRL 1.16's DPOTrainer also has gives TRL's loss on the same batch, model and reference.

TRL computes its loss inside `DPOTrainer.compute_loss` from the models; lit-daa's objectives receive the
per-pair log-probs of the very batch TRL built (same tokens, masks and padding), scored by lit-daa's own
`response_logps`. Runs only where trl is installed (`pip install -e ".[bench]"`).
"""

from __future__ import annotations

import pytest
import torch

trl = pytest.importorskip("trl")

from plugins.trl_runs import CPU_ARGS, batch_logps, nudge  # noqa: E402

from lit_daa.models import load_causal_lm, load_tokenizer  # noqa: E402
from lit_daa.objectives import (  # noqa: E402
    AOT,
    DPO,
    EXO,
    IPO,
    NCA,
    AOTUnpaired,
    APODown,
    APOZero,
    BCOPair,
    DiscoPOP,
    NormalizedDPO,
    PairLogps,
    RobustDPO,
    SLiC,
    SPPOHard,
)
from lit_daa.synthetic.world import SyntheticWorld  # noqa: E402

BETA = 0.3
CASES = {
    "sigmoid": DPO(BETA),
    "hinge": SLiC(BETA, margin=1.0),
    "ipo": IPO(BETA, form="azar", per_token=True),
    "exo_pair": EXO(BETA, epsilon=1e-3),
    "nca_pair": NCA(BETA),
    "robust": RobustDPO(BETA, label_smoothing=0.1),
    "bco_pair": BCOPair(BETA),
    "sppo_hard": SPPOHard(BETA),
    "aot": AOT(BETA),
    "aot_unpaired": AOTUnpaired(BETA),
    "apo_zero": APOZero(BETA),
    "apo_down": APODown(BETA),
    "discopop": DiscoPOP(BETA, tau=0.05),
    "sigmoid_norm": NormalizedDPO(BETA),
}
SMOOTHING = {"exo_pair": 1e-3, "robust": 0.1}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory):
    from datasets import Dataset

    torch.manual_seed(0)
    policy = load_causal_lm("embedded:neox-tiny")
    nudge(policy)  # away from its reference, so the log-ratios are not all zero
    reference = load_causal_lm("embedded:neox-tiny").eval().requires_grad_(False)
    rows = SyntheticWorld().pairs(8, 3)
    return policy, reference, load_tokenizer("embedded:neox-tiny"), Dataset.from_list(rows)


@pytest.mark.parametrize("loss_type", list(CASES))
def test_loss_equals_trls(models, loss_type: str, tmp_path) -> None:
    policy, reference, tokenizer, dataset = models
    config = trl.DPOConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=8,
        loss_type=[loss_type],
        beta=BETA,
        label_smoothing=SMOOTHING.get(loss_type, 0.0),
        **CPU_ARGS,
    )
    trainer = trl.DPOTrainer(
        model=policy, ref_model=reference, args=config, train_dataset=dataset, processing_class=tokenizer
    )
    batch = next(iter(trainer.get_train_dataloader()))
    with torch.no_grad():
        theirs = trainer.compute_loss(policy, batch).item()
        sums, counts, ref = batch_logps(policy, reference, batch)
        ours = CASES[loss_type](PairLogps.from_rows(sums, counts, ref)).loss.item()
    # 1e-6, or one part in a million for the larger losses: both sides compute log-probs in float32
    assert ours == pytest.approx(theirs, abs=1e-6, rel=1e-6), (loss_type, ours, theirs)
