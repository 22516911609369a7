"""Parameter-efficient fine-tuning: LoRA through peft, on a full-precision or a 4-bit (QLoRA) base."""

from __future__ import annotations

from torch import nn


class LoRA:
    """Wrap the policy with peft LoRA adapters; the reference then is the same model with adapters off.

    Args:
        r: adapter rank.
        alpha: LoRA scaling numerator (scale = alpha / r).
        dropout: dropout on the adapter input.
        target_modules: module names to adapt; None adapts every linear layer except the output head.
    """

    def __init__(self, r: int = 8, alpha: int = 16, dropout: float = 0.0, target_modules: list[str] | None = None):
        self.r, self.alpha, self.dropout, self.target_modules = r, alpha, dropout, target_modules

    def apply(self, model: nn.Module) -> nn.Module:
        from peft import LoraConfig, get_peft_model  # optional dependency: the `lora` extra

        config = LoraConfig(
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=self.target_modules or "all-linear",
            task_type="CAUSAL_LM",
        )
        return get_peft_model(model, config)


def enable_activation_checkpointing(model: nn.Module) -> None:
    """Recompute each transformer block in the backward pass (transformers' own per-layer checkpointing).

    The non-reentrant form is used: it needs no input that requires grad (the embeddings of a LoRA or QLoRA base
    are frozen) and composes with FSDP2.
    """
    enable = getattr(model, "activation_checkpointing_enable", None) or getattr(
        model, "gradient_checkpointing_enable", None
    )
    if enable is None or not getattr(model, "supports_gradient_checkpointing", False):
        from lit_daa.errors import InputError

        raise InputError(f"model.activation_checkpointing: {type(model).__name__} does not support it")
    if enable.__name__ == "activation_checkpointing_enable":
        enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:  # transformers before 5.x
        enable(gradient_checkpointing_kwargs={"use_reentrant": False})
