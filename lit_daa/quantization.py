"""4-bit base weights for QLoRA, through bitsandbytes and transformers' BitsAndBytesConfig."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from lit_daa.errors import InputError

QUANT_TYPES = ("nf4", "fp4")
COMPUTE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def require_bitsandbytes(option: str) -> Any:
    """Import bitsandbytes, or stop with one sentence naming the option that asked for it."""
    try:
        import bitsandbytes
    except ImportError:
        raise InputError(
            f"{option} needs bitsandbytes, which is not installed (pip install 'lit-daa[qlora]')"
        ) from None
    return bitsandbytes


class FourBit:
    """Load the policy's linear layers in 4 bits (bitsandbytes), the base of QLoRA; needs `model.lora`.

    The adapters stay in float32 (peft casts adapter weights up by default), so their optimizer state and updates
    keep full precision while the frozen base is 4-bit and computes in `compute_dtype`.

    Args:
        quant_type: "nf4" (normal float, the QLoRA paper's) or "fp4".
        double_quant: also quantize the quantization constants (about 0.4 bits per weight less).
        compute_dtype: dtype the 4-bit matmuls compute in (bfloat16 on GPUs; float32 is exact on CPU).
    """

    def __init__(self, quant_type: str = "nf4", double_quant: bool = False, compute_dtype: str = "bfloat16") -> None:
        if quant_type not in QUANT_TYPES:
            raise InputError(f"model.quantization.quant_type must be one of {list(QUANT_TYPES)}, got '{quant_type}'")
        if compute_dtype not in COMPUTE_DTYPES:
            raise InputError(
                f"model.quantization.compute_dtype must be one of {sorted(COMPUTE_DTYPES)}, got '{compute_dtype}'"
            )
        self.quant_type, self.double_quant, self.compute_dtype = quant_type, double_quant, compute_dtype

    def config(self) -> Any:
        """The `quantization_config` for `from_pretrained`."""
        require_bitsandbytes("model.quantization")
        from transformers import BitsAndBytesConfig

        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=self.quant_type,
            bnb_4bit_use_double_quant=self.double_quant,
            bnb_4bit_compute_dtype=COMPUTE_DTYPES[self.compute_dtype],
        )

    @staticmethod
    def keep_trainable_layout(model: nn.Module) -> nn.Module:
        """Stop bitsandbytes from repacking 4-bit weights into its CPU inference layout.

        On CPUs with avx512_bf16, bitsandbytes 0.50 repacks a `Linear4bit` weight the first time the layer runs in
        eval mode without grad (validation, the adapters-off reference pass) and then keeps the packed layout, whose
        kernel has no backward: the next training step fails. The trainer alternates both kinds of pass, so the
        repack is switched off per layer; the plain 4-bit kernel computes the same values.
        """
        import bitsandbytes as bnb

        for module in model.modules():
            if isinstance(module, bnb.nn.Linear4bit):
                module.support_avx512bf16_for_cpu = False
        return model

    def __repr__(self) -> str:
        return f"FourBit({self.quant_type}, double_quant={self.double_quant}, compute={self.compute_dtype})"


def is_4bit(model: nn.Module) -> bool:
    """True when a model (or the base of a peft model) holds bitsandbytes 4-bit weights."""
    return any(type(p).__name__ == "Params4bit" for p in model.parameters())


def dense_weight(param: Tensor) -> Tensor:
    """A parameter as a dense tensor: 4-bit weights dequantized to their compute dtype, others as they are."""
    state = getattr(param, "quant_state", None)
    if type(param).__name__ != "Params4bit" or state is None:
        return param.detach()
    from bitsandbytes.functional import dequantize_4bit

    return dequantize_4bit(param.data, state).to(state.dtype)
