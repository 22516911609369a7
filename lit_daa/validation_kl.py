"""KL(pi || pi_ref) during training: at each validation, sample a few validation prompts from the policy, score the
samples under policy and reference, and log `val/kl`, `val/kl_stderr` and `val/sqrt_kl` (a `SequenceKL`).

    lit-daa fit --config configs/quickstart.yaml \\
        --trainer.callbacks+=lit_daa.validation_kl.ValidationKL --trainer.callbacks.num_prompts=64

Each rank samples its own share of the first `num_prompts` validation prompts; the metric sums across ranks, so
the logged value is the one of all prompts at once. Under FSDP the ranks generate in lockstep (`synced_gpus`).
"""

from __future__ import annotations

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from lit_daa.errors import InputError
from lit_daa.evaluation.sampling import sample_ids
from lit_daa.logps import response_logps, right_pad
from lit_daa.metrics import SequenceKL
from lit_daa.models import load_tokenizer


class ValidationKL(Callback):
    """Logs a Monte-Carlo KL(pi || pi_ref) from the policy's own samples at the end of every validation.

    Args:
        num_prompts: validation prompts sampled (the first ones, shared out over ranks).
        max_new_tokens: most tokens per sample, EOS included (the estimate is the KL of sequences cut there).
        temperature: must be 1: at another temperature the samples are not the policy's and the mean log-ratio is
            not a KL, so it is refused.
        batch_size: prompts per generate / forward pass.
        seed: sampling seed (the same at every validation, so successive values differ by the weights only).
    """

    def __init__(
        self,
        num_prompts: int = 64,
        max_new_tokens: int = 32,
        temperature: float = 1.0,
        batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        if temperature != 1.0:
            raise InputError(
                f"ValidationKL temperature must be 1.0 (got {temperature}): at another temperature the samples are "
                "not the policy's own and their mean log-ratio is not a KL"
            )
        if num_prompts < 1 or max_new_tokens < 1 or batch_size < 1:
            raise InputError("ValidationKL num_prompts, max_new_tokens and batch_size must be at least 1")
        self.num_prompts, self.max_new_tokens, self.batch_size, self.seed = (
            num_prompts,
            max_new_tokens,
            batch_size,
            seed,
        )
        self.temperature = temperature
        self.metric = SequenceKL()

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Refuse, before the reference cache is filled and before the first step, a run whose reference holds no
        model: the samples could not be scored, and the run would stop at its first validation."""
        # Read by name: the callback works with any LightningModule and must not import the DAA module above it.
        if getattr(pl_module, "cached_reference", False):
            raise InputError(
                "ValidationKL scores the policy's samples under the reference, and with model.cached_reference true "
                "the reference holds no model to score new samples with (only each pair's log-probs), so drop one of "
                "them (--model.cached_reference false, or ValidationKL from trainer.callbacks)"
            )
        objective = getattr(pl_module, "objective", None)
        if objective is not None and not getattr(objective, "requires_reference", True):
            raise InputError(
                f"ValidationKL scores the policy's samples under the reference, and the objective "
                f"{type(objective).__name__} uses none, so the run holds no model to score new samples with; remove "
                "ValidationKL from trainer.callbacks (or train an objective with a reference)"
            )

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking:
            return
        datamodule = trainer.datamodule
        dataset = getattr(datamodule, "val_dataset", None)
        if dataset is None:
            raise InputError("ValidationKL needs validation prompts, and this run has no validation split")
        tokenizer = load_tokenizer(datamodule.tokenizer_name, option="data.tokenizer")
        eos = tokenizer.eos_token_id
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
        world = trainer.world_size
        count = min(self.num_prompts, len(dataset))
        count = max(count - count % world, world)  # the same share on every rank: generate calls are collective
        # rank r takes prompts r, r + W, ...; every rank runs as many generate calls (FSDP forwards are collective)
        mine = list(range(trainer.global_rank, count, world))
        prompts = [list(dataset[i]["prompt_ids"]) for i in mine]
        policy, device = pl_module.policy, pl_module.device
        seed = self.seed + 7919 * trainer.global_rank  # ranks sample different prompts; keep their streams apart
        options = (self.max_new_tokens, self.temperature, self.batch_size, seed, world > 1)
        responses = sample_ids(policy, prompts, eos, pad, *options)
        metric = self.metric.to(device)
        metric.reset()
        was_training = policy.training
        policy.eval()
        with torch.no_grad():
            for start in range(0, len(prompts), self.batch_size):
                stop = start + self.batch_size
                rows = list(zip(prompts[start:stop], responses[start:stop], strict=True))
                batch = tuple(t.to(device) for t in right_pad(rows, pad))
                ratio = response_logps(policy, *batch)[0] - pl_module.reference.sequence_logps(*batch)
                metric.update(ratio)
        policy.train(was_training)
        values = metric.compute()
        for name, value in values.items():
            pl_module.log(f"val/{name}", value.float(), sync_dist=False, rank_zero_only=False)
