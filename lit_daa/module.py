"""DAAModule: a policy, its reference and an objective; the Trainer owns the loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from jsonargparse import lazy_instance
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn

from lit_daa.adapters import LoRA, enable_activation_checkpointing
from lit_daa.checkpoint_checks import check_state_matches
from lit_daa.data.resumable import reopen_unfinished_epoch
from lit_daa.errors import InputError
from lit_daa.metrics import preference_metrics
from lit_daa.models import DTYPES, load_causal_lm, load_tokenizer, resolve_model
from lit_daa.objectives import DPO, Objective
from lit_daa.pair_steps import PairMetricSteps
from lit_daa.quantization import FourBit, require_bitsandbytes
from lit_daa.reference import Reference, choose_reference
from lit_daa.reference_cache import describe, fill_reference_cache
from lit_daa.scoring import Scored, score_pairs
from lit_daa.sharded_loading import RankZeroLoad
from lit_daa.sharding import sharding_of


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; raised before the optimizer step so no bad weights are saved."""


class DAAModule(PairMetricSteps, LightningModule):
    """Train a policy with a Direct Alignment Algorithm against a frozen reference.

    The policy and the reference are built in `configure_model` (idempotent), where Lightning's strategies expect
    them: under `lit_daa.strategies.FSDP2` both are sharded there, block by block.

    Args:
        policy: model to train: an embedded name (`embedded:neox-tiny`), a local Hugging Face folder or a hub id.
        reference: the reference model pi_ref; default: the same checkpoint as `policy` (for LoRA: the policy
            with adapters off). Reference-free objectives (SimPO, SFT) load none.
        objective: the DAA loss, e.g. `lit_daa.objectives.DPO` with `beta`.
        optimizer: optimizer factory (default AdamW; set `lr` in config; bitsandbytes' 8-bit and paged optimizers,
            e.g. `bitsandbytes.optim.PagedAdamW8bit`, are picked the same way by class_path).
        lr_scheduler: optional scheduler factory, stepped every optimizer step (e.g. `lit_daa.schedulers.LinearWarmup`).
        policy_dtype: dtype the policy is loaded in (float32, bfloat16, float16).
        reference_dtype: dtype the reference is loaded in (the paper: half precision).
        lora: LoRA adapters on the policy (peft); None trains all weights.
        quantization: load the policy's base weights in 4 bits (`lit_daa.quantization.FourBit`) under LoRA: QLoRA.
        cached_reference: compute every pair's reference log-probs once (or find them in the cache, keyed by the
            reference weights, the tokenized data and `reference_dtype`; see `lit_daa.reference_cache`), or use the
            data's own `ref_chosen_logps`/`ref_rejected_logps` columns: no reference model is held in training.
        attn_implementation: the attention kernel of the models (transformers' `attn_implementation`, e.g. sdpa,
            flex_attention, flash_attention_2); None: transformers' default.
        activation_checkpointing: recompute each transformer block's activations in the backward pass instead of
            keeping them (less memory, about a third more compute).
        disable_dropout: set every dropout probability of the policy to 0 (as the DPO reference code and TRL do),
            so the log-probs of chosen and rejected are not perturbed differently within one forward.
    """

    progress_metric = "rewards/accuracies"

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
        quantization: FourBit | None = None,
        cached_reference: bool = False,
        attn_implementation: str | None = None,
        activation_checkpointing: bool = False,
        disable_dropout: bool = True,
    ) -> None:
        super().__init__()
        if quantization is not None and lora is None:
            raise InputError("model.quantization needs model.lora: 4-bit weights cannot be trained directly")
        if quantization is not None:
            require_bitsandbytes("model.quantization")
        for option, dtype in (("model.policy_dtype", policy_dtype), ("model.reference_dtype", reference_dtype)):
            if dtype not in DTYPES:
                raise InputError(f"{option} must be one of {sorted(DTYPES)}, got '{dtype}'")
        self.policy_name = policy
        self.reference_name = reference
        for option, name in (("model.policy", policy), ("model.reference", reference)):
            if name is not None:  # a wrong name or an empty folder stops the run now, not after the data is tokenized
                resolve_model(name, option)
        self.objective = objective
        self.optimizer_factory: Callable = optimizer
        self.scheduler_factory: Callable | None = lr_scheduler
        self.policy_dtype, self.reference_dtype = policy_dtype, reference_dtype
        self.lora, self.quantization = lora, quantization
        self.cached_reference = cached_reference
        self.attn_implementation = attn_implementation
        self.activation_checkpointing = activation_checkpointing
        self.disable_dropout = disable_dropout
        self.policy: nn.Module | None = None  # built in configure_model
        self.reference: Reference | None = None
        self.persist_reference = False  # a moving reference (TR-DPO) is checkpointed with the policy
        self.tokenizer = load_tokenizer(policy)
        self._first_nonfinite = torch.tensor(-1)
        self.train_metrics = preference_metrics("train/")
        self.val_metrics = preference_metrics("val/")
        self.extra_val_metrics = nn.ModuleDict()  # data.extra_val sets, by name, logged as val/<name>/...
        self.val_names = [""]
        self.test_metrics = preference_metrics("test/")
        # Checkpoints never hold the reference (Reference.state_dict is empty); loading one must not miss it.
        self.register_load_state_dict_post_hook(_ignore_missing_reference)

    def setup(self, stage: str) -> None:
        """Metrics for the data's extra validation sets; with `cached_reference`, the data's reference log-probs."""
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        self.val_names = list(getattr(datamodule, "val_names", [""]) or [""])
        for name in self.val_names:
            if name and name not in self.extra_val_metrics:
                self.extra_val_metrics[name] = preference_metrics(f"val/{name}/")
        if not self.cached_reference or datamodule is None:
            return
        strategy = self.trainer.strategy
        reference = self.reference_name or self.policy_name
        # rank 0 computes what is missing, the other ranks then find it (one file per key, written atomically)
        first = strategy.global_rank == 0
        if not first:
            strategy.barrier("reference cache")
        results = fill_reference_cache(
            datamodule, reference, self.reference_dtype, strategy.root_device, self._load_reference
        )
        if first:
            strategy.barrier("reference cache")
        if results:
            rank_zero_info(describe(results))

    def configure_model(self) -> None:
        """Build the policy and the reference (once), then let a sharding strategy shard both.

        Under a sharding strategy with several ranks only rank 0 loads the weights; the other ranks build both models
        empty and receive their shards from it (`lit_daa.sharded_loading`).
        """
        if self.policy is not None:  # Lightning calls this hook for every stage; the models are built once
            return
        loading = RankZeroLoad.of(self._device_mesh, quantized=self.quantization is not None)
        model = load_causal_lm(
            self.policy_name,
            self.policy_dtype,
            "model.policy",
            self.quantization,
            device=self._load_device(),
            attn_implementation=self.attn_implementation,
            empty=loading.empty,
        )
        if self.disable_dropout:
            for module in model.modules():
                if isinstance(module, nn.Dropout):
                    module.p = 0.0
        if self.activation_checkpointing:
            enable_activation_checkpointing(model)
        # from_pretrained returns eval mode and Lightning keeps module modes as they are
        self.policy = (self.lora.apply(model) if self.lora is not None else model).train()
        self.reference = choose_reference(
            self.objective.requires_reference,
            self.policy,
            self.policy_name,
            self.reference_name,
            lambda name: self._load_reference(name, loading.empty),
            cached=self.cached_reference,
        )
        self.reference.persistent = self.persist_reference
        if self._device_mesh is not None:  # a ModelParallelStrategy: shard here, as Lightning expects
            sharding = sharding_of(self.trainer.strategy)
            models = (self.policy, self.reference.shardable())
            with loading.filling(models, self.trainer.strategy.root_device, sharding.cpu_offload):
                sharding.shard(*models, self._device_mesh)

    def _load_reference(self, name: str, empty: bool = False) -> nn.Module:
        return load_causal_lm(
            name, self.reference_dtype, "model.reference", attn_implementation=self.attn_implementation, empty=empty
        )

    def _load_device(self) -> torch.device | None:
        # A 4-bit model is quantized where it is loaded: on this rank's own device (each rank onto its own GPU).
        if self._trainer is None:
            return None
        return self.trainer.strategy.root_device

    def _score(self, batch: dict[str, Tensor]) -> Scored:
        assert self.policy is not None and self.reference is not None, "configure_model() builds the models"
        return score_pairs(self.policy, self.reference, self.objective, batch)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        scored = self._score(batch)
        loss = scored.output.loss
        # The first step with a non-finite loss, kept on the device: reading it is a host sync, so on GPUs it is
        # read only where a decision is due (log steps, before a checkpoint is written, at the end); on the CPU
        # it costs nothing and is read at once, before the optimizer step.
        bad = ~torch.isfinite(loss.detach())
        self._first_nonfinite = torch.where(
            bad & (self._first_nonfinite < 0), self.global_step, self._first_nonfinite.to(loss.device)
        )
        if loss.device.type == "cpu":
            self._raise_if_nonfinite()
        values = scored.metric_values()
        b = values["losses"].shape[0]
        self.log_dict(self.train_metrics(**values), on_step=True, on_epoch=False, batch_size=b)
        self.log("loss", loss.detach(), prog_bar=True, logger=False, batch_size=b)
        for name, value in scored.output.parts.items():  # a composed objective's parts
            self.log(f"train/loss/{name}", value, on_step=True, on_epoch=False, batch_size=b)
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.global_step % max(1, self.trainer.log_every_n_steps) == 0:
            self._raise_if_nonfinite()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self._trainer is not None:  # --ckpt_path: another model's weights stop here, in one sentence
            check_state_matches(self.state_dict(), checkpoint, self.trainer.ckpt_path, self.strict_loading)
        # a run stopped by max_steps mid-epoch continues that epoch when resumed with more steps
        reopen_unfinished_epoch(checkpoint)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._raise_if_nonfinite()  # never write weights that a non-finite loss has touched

    def on_train_end(self) -> None:
        self._raise_if_nonfinite()

    def _raise_if_nonfinite(self) -> None:
        step = int(self._first_nonfinite)
        if step >= 0:
            raise NonFiniteLossError(
                f"the training loss became non-finite (NaN or infinite) at global step {step}; training stopped "
                "before that step's weights were saved, so the last saved checkpoint is intact"
            )

    def on_train_epoch_end(self) -> None:
        self.train_metrics.reset()

    def pair_metric_values(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return self._score(batch).metric_values()

    def configure_optimizers(self) -> Any:
        assert self.policy is not None, "configure_model() builds the models"
        params = [p for p in self.policy.parameters() if p.requires_grad]
        optimizer = self.optimizer_factory(params)
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def _ignore_missing_reference(module: nn.Module, incompatible: Any) -> None:
    keys = incompatible.missing_keys
    keys[:] = [k for k in keys if not k.startswith("reference.")]
