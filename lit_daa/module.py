"""DAAModule: a policy, its reference and an objective; the Trainer owns the loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from jsonargparse import lazy_instance
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor

from lit_daa.adapters import LoRA
from lit_daa.errors import InputError
from lit_daa.logps import response_logps
from lit_daa.metrics import preference_metrics
from lit_daa.models import load_causal_lm, load_tokenizer
from lit_daa.objectives import DPO, Objective, ObjectiveOutput, PairLogps
from lit_daa.reference import choose_reference


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; raised before the optimizer step so no bad weights are saved."""


class DAAModule(LightningModule):
    """Train a policy with a Direct Alignment Algorithm against a frozen reference.

    Args:
        policy: model to train: an embedded name (`embedded:neox-tiny`), a local Hugging Face folder or a hub id.
        reference: the reference model pi_ref; default: the same checkpoint as `policy` (for LoRA: the policy
            with adapters off). Reference-free objectives (SimPO, SFT) load none.
        objective: the DAA loss, e.g. `lit_daa.objectives.DPO` with `beta`.
        optimizer: optimizer factory (default AdamW; set `lr` in config).
        lr_scheduler: optional scheduler factory, stepped every optimizer step (e.g. `lit_daa.schedulers.LinearWarmup`).
        policy_dtype: dtype the policy is loaded in (float32, bfloat16, float16).
        reference_dtype: dtype the reference is loaded in (the paper: half precision).
        lora: LoRA adapters on the policy (peft); None trains all weights.
        load_in_4bit: load the policy in NF4 4-bit (bitsandbytes) under LoRA, i.e. QLoRA.
        disable_dropout: set every dropout probability of the policy to 0 (as the DPO reference code and TRL do),
            so the log-probs of chosen and rejected are not perturbed differently within one forward.
    """

    def __init__(
        self,
        policy: str = "embedded:neox-tiny",
        reference: str | None = None,
        objective: Objective = lazy_instance(DPO, beta=0.1),
        optimizer: OptimizerCallable = torch.optim.AdamW,
        lr_scheduler: LRSchedulerCallable | None = None,
        policy_dtype: str = "float32",
        reference_dtype: str = "float32",
        lora: LoRA | None = None,
        load_in_4bit: bool = False,
        disable_dropout: bool = True,
    ) -> None:
        super().__init__()
        if load_in_4bit and lora is None:
            raise InputError("model.load_in_4bit needs model.lora: 4-bit weights cannot be trained directly")
        self.policy_name = policy
        self.objective = objective
        self.optimizer_factory: Callable = optimizer
        self.scheduler_factory: Callable | None = lr_scheduler
        model = load_causal_lm(policy, policy_dtype, "model.policy", load_in_4bit=load_in_4bit)
        if disable_dropout:
            for module in model.modules():
                if isinstance(module, torch.nn.Dropout):
                    module.p = 0.0
        # from_pretrained returns eval mode and Lightning keeps module modes as they are
        self.policy = (lora.apply(model) if lora is not None else model).train()
        self.tokenizer = load_tokenizer(policy)
        self.reference = choose_reference(
            objective.requires_reference,
            self.policy,
            policy,
            reference,
            lambda name: load_causal_lm(name, reference_dtype, "model.reference"),
        )
        self.train_metrics = preference_metrics("train/")
        self.val_metrics = preference_metrics("val/")
        self.test_metrics = preference_metrics("test/")

    def _apply(self, fn: Callable[[Tensor], Tensor], *args: Any, **kwargs: Any) -> DAAModule:
        # The reference is deliberately not a child module (never checkpointed, never optimised), so device and
        # dtype moves of the LightningModule are forwarded to it here.
        super()._apply(fn, *args, **kwargs)
        self.reference.apply(fn)
        return self

    def pair_logps(self, batch: dict[str, Tensor]) -> PairLogps:
        """Policy (and reference) log-probs of B pairs from a collated batch of 2B rows [chosen; rejected]."""
        sums, counts = response_logps(self.policy, batch["input_ids"], batch["attention_mask"], batch["response_mask"])
        return PairLogps.from_rows(sums, counts, self.reference.logps(batch))

    def _evaluate(self, batch: dict[str, Tensor]) -> tuple[ObjectiveOutput, dict[str, Tensor]]:
        logps = self.pair_logps(batch)
        out = self.objective(logps)
        values = {
            "losses": out.losses.detach(),
            "chosen_rewards": out.chosen_rewards,
            "rejected_rewards": out.rejected_rewards,
            "policy_chosen": logps.policy_chosen.detach(),
            "policy_rejected": logps.policy_rejected.detach(),
        }
        return out, values

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        out, values = self._evaluate(batch)
        if not torch.isfinite(out.loss):
            raise NonFiniteLossError(
                f"the training loss became {out.loss.item()} at global step {self.global_step} (batch {batch_idx});"
                " training stopped before the optimizer step, so the last saved checkpoint is intact"
            )
        b = values["losses"].shape[0]
        self.log_dict(self.train_metrics(**values), on_step=True, on_epoch=False, batch_size=b)
        self.log("loss", out.loss.detach(), prog_bar=True, logger=False, batch_size=b)
        return out.loss

    def on_train_epoch_end(self) -> None:
        self.train_metrics.reset()

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        _, values = self._evaluate(batch)
        self.val_metrics.update(**values)
        self.log_dict(self.val_metrics, on_epoch=True, batch_size=values["losses"].shape[0])
        self.log("val/acc", self.val_metrics["rewards/accuracies"], prog_bar=True, logger=False)

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        _, values = self._evaluate(batch)
        self.test_metrics.update(**values)
        self.log_dict(self.test_metrics, on_epoch=True, batch_size=values["losses"].shape[0])

    def configure_optimizers(self) -> Any:
        params = [p for p in self.policy.parameters() if p.requires_grad]
        optimizer = self.optimizer_factory(params)
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
