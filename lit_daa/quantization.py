"""4-bit base weights for QLoRA, through bitsandbytes and transformers' BitsAndBytesConfig."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from lit_daa.errors import InputError

QUANT_TYPES = ("nf4", "fp4")
COMPUTE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# The dtype the packed 4-bit bytes are held in (bitsandbytes' `quant_storage`): the bytes are the same in each, only
# what FSDP2 takes them for differs (integers it leaves alone on recent torch, floats it may cast).
STORAGE_DTYPES = {"uint8": torch.uint8, **COMPUTE_DTYPES}
# Set on a model loaded in 4 bits (`FourBit.keep_trainable_layout`): the FourBit it was loaded with, so that the
# sharding step knows whether the user chose the storage dtype.
FOUR_BIT_ATTR = "lit_daa_four_bit"


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
        quant_storage: dtype the packed 4-bit weights are held in (bitsandbytes' `bnb_4bit_quant_storage`; the bytes
            are the same). null: uint8 on one device, and under `--trainer.strategy fsdp2` the dtype FSDP2 gathers
            the policy in (`trainer.strategy.param_dtype`, else `model.policy_dtype`), so that FSDP2 shards and
            gathers them like the other weights and never casts them (see `lit_daa.sharding`). Under fsdp2 any
            other value is refused: FSDP2 would cast the packed bytes as if they were numbers.
    """

    def __init__(
        self,
        quant_type: str = "nf4",
        double_quant: bool = False,
        compute_dtype: str = "bfloat16",
        quant_storage: str | None = None,
    ) -> None:
        if quant_type not in QUANT_TYPES:
            raise InputError(f"model.quantization.quant_type must be one of {list(QUANT_TYPES)}, got '{quant_type}'")
        if compute_dtype not in COMPUTE_DTYPES:
            raise InputError(
                f"model.quantization.compute_dtype must be one of {sorted(COMPUTE_DTYPES)}, got '{compute_dtype}'"
            )
        if quant_storage is not None and quant_storage not in STORAGE_DTYPES:
            raise InputError(
                f"model.quantization.quant_storage must be one of {sorted(STORAGE_DTYPES)} or null, got "
                f"'{quant_storage}'"
            )
        self.quant_type, self.double_quant, self.compute_dtype = quant_type, double_quant, compute_dtype
        self.quant_storage = quant_storage

    def config(self) -> Any:
        """The `quantization_config` for `from_pretrained`."""
        require_bitsandbytes("model.quantization")
        from transformers import BitsAndBytesConfig

        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=self.quant_type,
            bnb_4bit_use_double_quant=self.double_quant,
            bnb_4bit_compute_dtype=COMPUTE_DTYPES[self.compute_dtype],
            bnb_4bit_quant_storage=STORAGE_DTYPES[self.quant_storage or "uint8"],
        )

    def keep_trainable_layout(self, model: nn.Module) -> nn.Module:
        """Stop bitsandbytes from repacking 4-bit weights into its CPU inference layout.

        On CPUs with avx512_bf16, bitsandbytes 0.50 repacks a `Linear4bit` weight the first time the layer runs in
        eval mode without grad (validation, the adapters-off reference pass) and then keeps the packed layout, whose
        kernel has no backward: the next training step fails. The trainer alternates both kinds of pass, so the
        repack is switched off per layer; the plain 4-bit kernel computes the same values. The model also keeps
        this FourBit (`four_bit_of`), for the sharding step.
        """
        import bitsandbytes as bnb

        for module in model.modules():
            if isinstance(module, bnb.nn.Linear4bit):
                module.support_avx512bf16_for_cpu = False
        setattr(model, FOUR_BIT_ATTR, self)
        return model

    def __repr__(self) -> str:
        return (
            f"FourBit({self.quant_type}, double_quant={self.double_quant}, compute={self.compute_dtype}, "
            f"storage={self.quant_storage or 'auto'})"
        )


def four_bit_of(model: nn.Module) -> FourBit | None:
    """The FourBit a model (or the base of a peft model) was loaded with by `lit_daa.models`, else None."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return getattr(base, FOUR_BIT_ATTR, None)


def check_storage(quant_storage: str | None, gather: torch.dtype) -> None:
    """Refuse a chosen `model.quantization.quant_storage` that FSDP2, gathering the policy in `gather`, would cast."""
    if quant_storage is None or STORAGE_DTYPES[quant_storage] == gather:
        return
    wanted = next(name for name, value in STORAGE_DTYPES.items() if value == gather)
    raise InputError(
        f"model.quantization.quant_storage {quant_storage} cannot be sharded by FSDP2, which needs the "
        f"packed 4-bit weights held in the dtype it gathers the policy in, {wanted} (trainer.strategy.param_dtype, "
        "else model.policy_dtype), or it may cast or drop them (a loss of 0 or NaN): set "
        f"model.quantization.quant_storage to {wanted} or leave it null"
    )


def store_for_sharding(model: nn.Module, dtype: torch.dtype) -> int:
    """Hold every 4-bit weight of `model` in `dtype`, the dtype FSDP2 will gather it in; returns how many changed.

    FSDP2 casts each floating-point parameter to its `MixedPrecisionPolicy.param_dtype` before the all-gather. For
    packed 4-bit bytes held as another float dtype that cast reads the bytes as numbers and rewrites them: a wrong
    size (an error deep in bitsandbytes) or, between two dtypes of one size (float16, bfloat16), silently wrong
    weights. Held in the gather dtype they are not cast: FSDP2 shards the packed rows like any weight (dim 0), and
    each `Linear4bit` rebuilds its `Params4bit` from the gathered rows and its own `quant_state` (the absmax and
    code tensors, not parameters: replicated on every rank) when it runs. The bytes are re-viewed, never copied
    or re-quantized, so the weights stay exactly those of a one-device QLoRA run (bitsandbytes packs the same bytes
    for any `quant_storage`). uint8, the bitsandbytes default, is also re-viewed: older torch (the accelerate
    issue #3983 era) could not shard integer parameters, giving a loss of 0 or NaN.

    A storage dtype the user chose (`model.quantization.quant_storage`) that is not `dtype` is refused rather than
    overridden.
    """
    import bitsandbytes as bnb

    chosen = four_bit_of(model)
    if chosen is not None:
        check_storage(chosen.quant_storage, dtype)
    changed = 0
    for name, module in model.named_modules():
        if not isinstance(module, bnb.nn.Linear4bit) or module.weight.dtype == dtype:
            continue
        packed = module.weight.data.reshape(-1).view(torch.uint8)
        if packed.numel() % dtype.itemsize:
            raise InputError(
                f"the 4-bit weight of {name} packs into {packed.numel()} bytes, not a whole number of {dtype} values, "
                "so FSDP2 cannot shard it: train this model with --trainer.strategy ddp"
            )
        module.weight.data = packed.view(dtype).unsqueeze(1)
        module.weight.quant_storage = module.quant_storage = dtype
        changed += 1
    return changed


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


def dense_gathered_state(model: nn.Module, state: dict[str, Tensor]) -> dict[str, Tensor]:
    """A sharded model's gathered full state dict (`state`, on rank 0) with every 4-bit weight dequantized to its
    compute dtype and bitsandbytes' quantization constants beside it (`weight.absmax`, ...) dropped: what the
    one-device export computes with `dense_weight`. Gathered, a 4-bit weight is only its packed rows; the
    constants are read from the layer itself, which every rank holds whole. `state` unchanged when it has none.
    """
    if not state:
        return state
    try:
        import bitsandbytes as bnb
    except ImportError:
        return state
    from bitsandbytes.functional import dequantize_4bit

    for name, module in model.named_modules():
        quant_state = getattr(module, "quant_state", None)
        key = f"{name}.weight"
        if not isinstance(module, bnb.nn.Linear4bit) or quant_state is None or key not in state:
            continue
        for extra in [k for k in state if k.startswith(key + ".")]:
            del state[extra]
        packed = state[key].to(quant_state.absmax.device)
        state[key] = dequantize_4bit(packed, quant_state).to(quant_state.dtype).to("cpu")
    return state
