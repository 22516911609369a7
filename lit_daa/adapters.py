"""Parameter-efficient fine-tuning: LoRA through peft, on a full-precision or a 4-bit (QLoRA) base."""

from __future__ import annotations

from torch import nn

from lit_daa.errors import InputError


class LoRA:
    """Wrap the policy with peft LoRA adapters; the reference then is the same model with adapters off.

    Args:
        r: adapter rank.
        alpha: LoRA scaling numerator (scale = alpha / r).
        dropout: dropout on the adapter input.
        target_modules: module names to adapt; None adapts every linear layer except the output head.
    """

    def __init__(
        self, r: int = 8, alpha: int = 16, dropout: float = 0.0, target_modules: list[str] | None = None
    ) -> None:
        # refused here, not by peft when the model is wrapped (after the data is tokenized)
        if r < 1:
            raise InputError(f"model.lora.r (the adapter rank) must be at least 1, got {r}: try 8 or 16")
        if alpha <= 0:
            raise InputError(f"model.lora.alpha must be positive, got {alpha}: try twice model.lora.r")
        if not 0 <= dropout < 1:
            raise InputError(f"model.lora.dropout must be in [0, 1), got {dropout}")
        if target_modules is not None and not target_modules:
            raise InputError("model.lora.target_modules is an empty list: give module names, or null for every linear")
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
        raise InputError(f"model.activation_checkpointing: {type(model).__name__} does not support it")
    if enable.__name__ == "activation_checkpointing_enable":
        enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:  # transformers before 5.x
        enable(gradient_checkpointing_kwargs={"use_reentrant": False})
