"""Write a trained policy in Hugging Face format, from any strategy: plain, DDP, FSDP2-sharded, LoRA or QLoRA.

`export_policy` is called on every rank (gathering a sharded policy is collective) and writes on global rank 0:

- a full model that `AutoModelForCausalLM.from_pretrained` loads, without peft: LoRA adapters are merged into
  the base weights, and a 4-bit (QLoRA) base is dequantized to its compute dtype first (so the export computes
  what the trained policy computed, up to rounding);
- for a peft policy, the adapters alone beside it (`<target>-adapter`, peft's `save_pretrained`).

A sharded policy is gathered tensor by tensor into CPU memory on rank 0 only (`get_model_state_dict` with
`full_state_dict` and `cpu_offload`), so no rank ever holds two full copies and no GPU holds one.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import Tensor, nn

from lit_daa.quantization import dense_gathered_state, dense_weight, is_4bit
from lit_daa.reference import is_peft


def is_sharded(model: nn.Module) -> bool:
    """True when FSDP2 (`fully_shard`) has sharded the model."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def full_state_dict(model: nn.Module, rank: int) -> dict[str, Tensor]:
    """The model's full state dict as dense CPU tensors on global rank `rank` == 0 ({} on the other ranks).

    Sharded models are gathered collectively (every rank must call this); 4-bit weights are dequantized.
    """
    if is_sharded(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        state = get_model_state_dict(model, options=options)  # {} on every rank but 0
        return dense_gathered_state(model, state)  # 4-bit weights (QLoRA) dequantized
    if rank != 0:
        return {}
    params = dict(model.named_parameters(remove_duplicate=False))
    buffers = dict(model.named_buffers(remove_duplicate=False))
    state = {}
    # state_dict's names (tied weights under each of their names, persistent buffers only); the quantization
    # constants bitsandbytes adds beside a 4-bit weight (weight.absmax, ...) are neither parameters nor buffers.
    for name in model.state_dict():
        if name in params:
            state[name] = dense_weight(params[name]).to("cpu", copy=True)
        elif name in buffers:
            state[name] = buffers[name].detach().to("cpu", copy=True)
    return state


def _skeleton(policy: nn.Module, state: dict[str, Tensor]) -> nn.Module:
    """An unsharded, unquantized copy of the policy's structure on the meta device, holding `state`'s tensors."""
    from transformers import AutoModelForCausalLM

    base = policy.get_base_model() if is_peft(policy) else policy
    config = copy.deepcopy(base.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the export is dense
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
        if is_peft(policy):
            from peft import get_peft_model

            model = get_peft_model(model, copy.deepcopy(policy.peft_config["default"]))
    model.load_state_dict(state, strict=True, assign=True)
    dtypes = {t.dtype for t in state.values() if t.is_floating_point()}
    if len(dtypes) == 1:
        (model.get_base_model() if is_peft(model) else model).config.dtype = next(iter(dtypes))
    return model


def export_policy(policy: nn.Module, tokenizer: object, target: Path, rank: int) -> dict[str, Path]:
    """Save `policy` (see the module docstring); call on every rank. Returns {what: folder} written (rank 0).

    Keys: "policy" (the full model, loadable with `from_pretrained`) and, for peft policies, "adapter".
    """
    target = Path(target)
    if not is_sharded(policy) and not is_peft(policy) and not is_4bit(policy):
        if rank != 0:
            return {}
        policy.save_pretrained(target)  # nothing to gather or merge: save the live model as it is
        tokenizer.save_pretrained(target)
        return {"policy": target}
    state = full_state_dict(policy, rank)
    if rank != 0:
        return {}
    model = _skeleton(policy, state)
    written = {}
    if is_peft(model):
        adapter = target.with_name(target.name + "-adapter")
        model.save_pretrained(adapter)
        written["adapter"] = adapter
        model = model.merge_and_unload()
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return {"policy": target, **written}
