"""RewardModule: the classic-RLHF reward model, trained on the same preference pairs as the DAA runs.

A Bradley-Terry reward model r(x, y): a sequence-classification head (one output) on the checkpoint the DAA runs
start from (the SFT export, or an embedded model), trained with

    loss = mean over pairs of -log sigmoid(r(x, y_w) - r(x, y_l)).

Where the score is read. The data module appends EOS to every response; the score of a sequence is the head's
output at the position whose next token is that EOS, i.e. at the last token of the text prompt + response. That
is the position a Hugging Face sequence-classification model reads when it scores the text prompt + response
(its last non-pad token), so the export, loaded by `lit_daa.evaluation.judges.RewardModelJudge`, gives the same
scores as the module. It also works for every layout of `lit_daa.layouts`: the position predicting EOS is in
every batch (`target_index` of the sequence's last scored token), whether responses share a row or not.

Train it with `lit-daa fit --config configs/lab/reward_model.yaml`; the `export` callback saves it at the end of
fit as a Hugging Face folder (model with `pad_token_id` set, tokenizer, model card).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from torchmetrics import MetricCollection
from transformers import AutoModelForSequenceClassification, PreTrainedModel
from transformers.utils import logging as hf_logging

from lit_daa.errors import InputError
from lit_daa.evaluation.inference import inference, model_device
from lit_daa.layouts.masks import attention_mask
from lit_daa.metrics import PairMean
from lit_daa.models import DTYPES, load_tokenizer, resolve_model
from lit_daa.pair_steps import PairMetricSteps


def load_reward_model(
    name_or_path: str, dtype: str = "float32", option: str = "model.policy", attn_implementation: str | None = None
) -> PreTrainedModel:
    """`AutoModelForSequenceClassification` with one output from a causal LM or reward model checkpoint.

    From a causal LM the backbone is kept, its LM head dropped and a new scalar head (`score`) initialised.
    """
    if dtype not in DTYPES:
        raise InputError(f"{option} dtype must be one of {sorted(DTYPES)}, got '{dtype}'")
    source = resolve_model(name_or_path, option)
    extra = {} if attn_implementation is None else {"attn_implementation": attn_implementation}
    # from a causal LM, a dropped LM head and a new score head are expected: no load report about them
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=1, dtype=DTYPES[dtype], **extra)
    except (OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"{option} '{name_or_path}' could not be loaded as a reward model ({first})") from None
    finally:
        hf_logging.set_verbosity(level)
    return model


def reward_head(model: nn.Module) -> nn.Module:
    """The scalar head of a Hugging Face sequence-classification model (`score` in GPT-NeoX, Llama, Qwen2, GPT-2)."""
    head = getattr(model, "score", None)
    if not isinstance(head, nn.Module):
        raise InputError(f"the reward model {type(model).__name__} has no `score` head to read rewards from")
    return head


def rewards_at(model: nn.Module, inputs: dict[str, Tensor], flat_positions: Tensor) -> Tensor:
    """(N,) float32 rewards: the head applied to the hidden states at `flat_positions` (N,) of the (R * S) grid.

    Args:
        model: a sequence-classification model (`model.base_model` is its backbone, `model.score` its head).
        inputs: `input_ids` (R, S), `position_ids` (R, S) and either `attention_mask` (R, S) or `doc_ids` and
            `segments` (R, S), as in a scoring batch (`lit_daa.layouts.rows`).
        flat_positions: row * S + column of the position read for each sequence.
    """
    mask = attention_mask(model, inputs)
    hidden = model.base_model(
        input_ids=inputs["input_ids"], attention_mask=mask, position_ids=inputs["position_ids"], use_cache=False
    ).last_hidden_state
    picked = hidden.reshape(-1, hidden.shape[-1]).index_select(0, flat_positions)
    return reward_head(model)(picked).squeeze(-1).float()


def last_text_positions(batch: dict[str, Tensor]) -> Tensor:
    """(N,) flat positions predicting each sequence's last response token (its EOS): the last text token.

    For every layout the position whose logits predict a sequence's last scored token is that sequence's last
    token before EOS (the last prompt token when the response is EOS alone).
    """
    seq, pos = batch["target_seq"], batch["target_pos"]
    n = batch["counts"].shape[0]
    last = torch.full((n,), -1, dtype=pos.dtype, device=pos.device).scatter_reduce(0, seq, pos, reduce="amax")
    is_last = pos == last[seq]
    out = torch.zeros(n, dtype=torch.long, device=pos.device)
    return out.scatter(0, seq[is_last], batch["target_index"][is_last])


def score_batch(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    """(2B,) float32 rewards of a preference scoring batch: [chosen of pairs 0..B-1; rejected of 0..B-1]."""
    return rewards_at(model, batch, last_text_positions(batch))


def score_sequences(
    model: nn.Module, sequences: Sequence[Sequence[int]], pad_token_id: int, batch_size: int = 32
) -> Tensor:
    """(N,) float32 rewards of N token sequences (prompt + response ids, without a trailing EOS), each read at its
    last token; right-padded in batches of `batch_size`, under `inference` (eval mode, no gradients)."""
    if any(len(s) == 0 for s in sequences):
        raise InputError("a sequence to score with the reward model has no tokens")
    device = model_device(model)
    out = []
    with inference(model):
        for start in range(0, len(sequences), batch_size):
            rows = sequences[start : start + batch_size]
            width = max(len(r) for r in rows)
            ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for i, row in enumerate(rows):
                ids[i, : len(row)] = torch.tensor(list(row), dtype=torch.long)
                mask[i, : len(row)] = 1
            lengths = mask.sum(dim=1)
            inputs = {
                "input_ids": ids.to(device),
                "attention_mask": mask.to(device),
                "position_ids": torch.arange(width).expand(len(rows), width).to(device),
            }
            flat = (torch.arange(len(rows)) * width + lengths - 1).to(device)
            out.append(rewards_at(model, inputs, flat).cpu())
    return torch.cat(out) if out else torch.zeros(0)


def bradley_terry(chosen: Tensor, rejected: Tensor) -> dict[str, Tensor]:
    """Per-pair Bradley-Terry quantities from (B,) chosen and (B,) rejected rewards, each (B,):

    - `losses`: -log sigmoid(r_w - r_l);
    - `correct`: 1 when r_w > r_l, 1/2 on a tie, 0 otherwise (the held-out accuracy averages it);
    - `margins`: r_w - r_l; `chosen_scores`, `rejected_scores`: the rewards themselves.
    """
    margins = chosen - rejected
    correct = (margins > 0).to(margins.dtype) + 0.5 * (margins == 0).to(margins.dtype)
    return {
        "losses": -F.logsigmoid(margins),
        "correct": correct,
        "margins": margins,
        "chosen_scores": chosen,
        "rejected_scores": rejected,
    }


def reward_metrics(prefix: str) -> MetricCollection:
    """Metrics logged as `{prefix}rm_loss`, `rm_accuracy` (ties count 1/2), `rm_margin`, `rm_chosen`, `rm_rejected`."""
    return MetricCollection(
        {
            "rm_loss": PairMean("losses"),
            "rm_accuracy": PairMean("correct"),
            "rm_margin": PairMean("margins"),
            "rm_chosen": PairMean("chosen_scores"),
            "rm_rejected": PairMean("rejected_scores"),
        },
        prefix=prefix,
        compute_groups=False,
    )


class RewardModule(PairMetricSteps, LightningModule):
    """Train a Bradley-Terry reward model on preference pairs (see the module docstring).

    Selected in a fit config with `model: {class_path: lit_daa.reward_model.RewardModule, init_args: {...}}`;
    it reads the same `PreferenceDataModule` batches as `DAAModule` (any layout).

    Args:
        policy: the checkpoint the reward model starts from (named like DAAModule's, so the data module's
            tokenizer follows it): an SFT export folder, an embedded name (`embedded:neox-tiny`) or a hub id.
        optimizer: optimizer factory (default AdamW; set `lr` in config).
        lr_scheduler: optional scheduler factory, stepped every optimizer step.
        dtype: dtype the model is loaded in (float32, bfloat16, float16).
        attn_implementation: transformers' attention kernel; None: its default (SharedPrompt and Packed layouts
            need sdpa or flex_attention).
        disable_dropout: set every dropout probability to 0.
    """

    progress_metric = "rm_accuracy"

    def __init__(
        self,
        policy: str = "embedded:neox-tiny",
        optimizer: OptimizerCallable = torch.optim.AdamW,
        lr_scheduler: LRSchedulerCallable | None = None,
        dtype: str = "float32",
        attn_implementation: str | None = None,
        disable_dropout: bool = True,
    ) -> None:
        super().__init__()
        if dtype not in DTYPES:
            raise InputError(f"model.dtype must be one of {sorted(DTYPES)}, got '{dtype}'")
        self.policy_name = policy
        self.optimizer_factory: Callable = optimizer
        self.scheduler_factory: Callable | None = lr_scheduler
        self.dtype_name = dtype
        self.attn_implementation = attn_implementation
        self.disable_dropout = disable_dropout
        self.tokenizer = load_tokenizer(policy)  # a wrong name stops here, before the data is tokenized
        self.policy: PreTrainedModel | None = None  # the reward model, built in configure_model
        self.train_metrics = reward_metrics("train/")
        self.val_metrics = reward_metrics("val/")
        self.extra_val_metrics = nn.ModuleDict()
        self.val_names = [""]
        self.test_metrics = reward_metrics("test/")

    def configure_model(self) -> None:
        if self.policy is not None:
            return
        model = load_reward_model(self.policy_name, self.dtype_name, "model.policy", self.attn_implementation)
        # the export must carry the pad id: a sequence-classification model finds the last token through it
        model.config.pad_token_id = self.tokenizer.pad_token_id
        if self.disable_dropout:
            for module in model.modules():
                if isinstance(module, nn.Dropout):
                    module.p = 0.0
        self.policy = model.train()

    def setup(self, stage: str) -> None:
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        self.val_names = list(getattr(datamodule, "val_names", [""]) or [""])
        for name in self.val_names:
            if name and name not in self.extra_val_metrics:
                self.extra_val_metrics[name] = reward_metrics(f"val/{name}/")

    def pair_values(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """`bradley_terry` of the batch's pairs, each (B,) (pairs marked `valid = False` left out)."""
        assert self.policy is not None, "configure_model() builds the model"
        scores = score_batch(self.policy, batch)
        b = scores.shape[0] // 2
        values = bradley_terry(scores[:b], scores[b:])
        if "valid" in batch:
            values = {k: v[batch["valid"]] for k, v in values.items()}
        return values

    @torch.no_grad()
    def score_texts(self, prompts: Sequence[str], responses: Sequence[str], batch_size: int = 32) -> Tensor:
        """(N,) rewards of (prompt, response) texts, tokenized as the data module does (prompt and response each
        without special tokens, concatenated)."""
        assert self.policy is not None, "configure_model() builds the model"
        if len(prompts) != len(responses):
            raise InputError(f"score_texts needs one response per prompt, got {len(prompts)} and {len(responses)}")
        tok = self.tokenizer
        ids = [
            p + r
            for p, r in zip(
                tok(list(prompts), add_special_tokens=False)["input_ids"],
                tok(list(responses), add_special_tokens=False)["input_ids"],
                strict=True,
            )
        ]
        return score_sequences(self.policy, ids, tok.pad_token_id, batch_size)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        values = self.pair_values(batch)
        loss = values["losses"].mean()
        b = values["losses"].shape[0]
        self.log_dict(self.train_metrics(**values), on_step=True, on_epoch=False, batch_size=b)
        self.log("loss", loss.detach(), prog_bar=True, logger=False, batch_size=b)
        return loss

    def on_train_epoch_end(self) -> None:
        self.train_metrics.reset()

    def pair_metric_values(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return self.pair_values(batch)

    def configure_optimizers(self) -> Any:
        assert self.policy is not None, "configure_model() builds the model"
        optimizer = self.optimizer_factory([p for p in self.policy.parameters() if p.requires_grad])
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def hf_model_card(self, trainer: Trainer) -> str:
        """The README.md of the export (`lit_daa.model_card.write_model_card` asks the module for it)."""
        from lit_daa.model_card import card_tail

        datamodule = trainer.datamodule
        source = getattr(datamodule, "source", None)
        train = getattr(datamodule, "train_dataset", None)
        lines = [
            "---",
            "library_name: transformers",
            "tags: [lit-daa, reward-model, bradley-terry]",
            "---",
            "",
            f"# Bradley-Terry reward model on {self.policy_name}, trained by lit-daa",
            "",
            f"- base model: `{self.policy_name}` (a new scalar head; the score is read at the last token)",
            f"- data: {type(source).__name__ if source is not None else 'unknown'}, "
            f"{len(train) if train is not None else '?'} training pairs",
            f"- progress: {trainer.global_step} optimizer steps (epoch {trainer.current_epoch})",
            "",
            *card_tail(trainer),
        ]
        return "\n".join(lines)
