"""Loading under FSDP2 without one full copy of each model per process: rank 0 reads, the others receive shards.

Under a sharding strategy with more than one rank, only global rank 0 loads the real weights (`from_pretrained`,
an adapter merged in, as on one process); every other rank builds the same model on the meta device (no memory,
`lit_daa.models.load_causal_lm(..., empty=True)`). LoRA adapters are put on every rank's model, then all ranks
shard it (`FSDP2Sharding.shard`; rank 0 first takes its tensors aside and leaves an empty model too), and
`set_model_state_dict(..., broadcast_from_rank0=True)` sends rank 0's tensors one at a time, each rank allocating and
keeping only its slice, while rank 0 frees what it has sent. So a node holds about one whole copy of each model
(rank 0's, shrinking while the shards grow), not one copy per rank.

Rank 0 broadcasting was chosen over each rank reading its slices of the checkpoint's safetensors: it works for
anything `from_pretrained` can load (hub ids, `.bin` files, an SFT adapter merged at load), fresh LoRA adapters
need sending anyway (their random init happens on rank 0 only), and the result is rank 0's model bit for bit.

What the state dict does not carry is sent too: non-persistent buffers (the rotary `inv_freq` caches) are
broadcast from rank 0 after the state dict. Tied weights (an LM head sharing the embedding) stay one parameter:
the empty model is tied as `from_pretrained` ties it, and FSDP2 shards that parameter once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class RankZeroLoad:
    """Whether this run loads its models on rank 0 only, and whether this process builds them empty.

    Args:
        active: rank 0 loads, every other rank receives its shards (the same on every rank).
        empty: this process builds its models on the meta device (`active`, on a rank other than 0).
    """

    active: bool = False
    empty: bool = False

    @classmethod
    def of(cls, mesh: Any, quantized: bool = False) -> RankZeroLoad:
        """Active under a sharding mesh over more than one process. A 4-bit model is quantized while it is loaded,
        from the real weights, so there each rank still loads its own copy."""
        if mesh is None or quantized or not dist.is_available() or not dist.is_initialized():
            return cls()
        active = dist.get_world_size() > 1
        return cls(active, active and dist.get_rank() != 0)

    @contextmanager
    def filling(
        self, models: Sequence[nn.Module | None], device: torch.device, cpu_offload: bool = False
    ) -> Iterator[None]:
        """Shard `models` inside this block; after it, every rank's shards and buffers hold rank 0's values.

        Before the block, rank 0 takes its models' tensors aside and leaves the models themselves on the meta device
        like every other rank's, so that all ranks shard empty models. After it, rank 0 sends its tensors a few at a
        time and drops each group once sent, while every rank allocates only its shards of that group: rank 0 never
        holds a model's whole tensors and its shards at once, and the others never hold more than their shards and
        one whole tensor in flight.

        Args:
            models: the models sharded inside the block (None entries: no model, skipped).
            device: the device the models run on (the strategy's root device).
            cpu_offload: FSDP2 keeps the parameter shards in CPU memory (buffers stay on `device`).
        """
        if not self.active:
            yield
            return
        held = [model for model in models if model is not None]
        sources = [_take_aside(model) if not self.empty else ({}, {}) for model in held]
        yield
        for model, (tensors, buffers) in zip(held, sources, strict=True):
            _receive_state(model, tensors, torch.device("cpu") if cpu_offload else device)
            tensors.clear()
            _receive_buffers(model, buffers, device)
            buffers.clear()


def _take_aside(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Rank 0: the model's state dict and all its buffers (non-persistent ones too), then the model moved to meta.

    The returned tensors are now the only references to the weights, so sending them can free them group by group.
    """
    tensors = model.state_dict()
    buffers = {_name(module_name, name): buffer for module_name, name, buffer in _buffers(model)}
    # moving to meta gives each module a new parameter: note the tied ones (an LM head sharing the embedding) and
    # tie them again, as on the ranks that built the model empty
    places: dict[int, list[tuple[nn.Module, str]]] = {}
    for module in model.modules():
        for name, param in module._parameters.items():
            if param is not None:
                places.setdefault(id(param), []).append((module, name))
    model.to(torch.device("meta"))
    for (owner, owner_name), *others in places.values():
        for module, name in others:
            module._parameters[name] = owner._parameters[owner_name]
    return tensors, buffers


def _receive_state(model: nn.Module, tensors: dict[str, torch.Tensor], device: torch.device) -> None:
    """Fill a sharded meta model's parameters (and persistent buffers) from rank 0's `tensors`, group by group.

    `set_model_state_dict` keeps every tensor it is given alive until it returns, so the model is filled in groups
    of modules of about 1/32 of its bytes: each rank allocates its shards of one group (`to_empty` of those modules
    alone), rank 0 sends that group's tensors and drops them, and so on. Rank 0 thus never holds a model's whole
    tensors and all its shards at once.
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    # strict=False: each call carries one group; that no parameter was left out is checked below
    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True, strict=False)
    for modules in _groups(model):
        keys = []
        for prefix, module in modules:
            if any(param.is_meta for param in module.parameters(recurse=False)):  # a tied one may be filled already
                module.to_empty(device=device, recurse=False)
            keys += [_name(prefix, name) for name in module._parameters]
        group = {key: tensors.pop(key) for key in keys if key in tensors} if dist.get_rank() == 0 else {}
        set_model_state_dict(model, group, options=options)
        del group
    missing = [name for name, param in model.named_parameters() if param.is_meta]
    if missing:
        raise RuntimeError(f"rank 0 sent no values for {len(missing)} parameters of the model, e.g. {missing[0]}")


# Groups smaller than this gain nothing (a small model is sent in one group): each group costs a pass over the model.
MIN_GROUP_BYTES = 1 << 20


def _groups(model: nn.Module, parts: int = 32) -> list[list[tuple[str, nn.Module]]]:
    """The modules that hold parameters of their own, in order (the same on every rank), cut into groups of about
    1/`parts` of the model's bytes and at least `MIN_GROUP_BYTES` (a module is never split)."""

    def own_bytes(module: nn.Module) -> int:
        return sum(p.numel() * p.element_size() for p in module.parameters(recurse=False))

    holders = [(name, module) for name, module in model.named_modules() if own_bytes(module)]
    limit = max(sum(own_bytes(module) for _, module in holders) // parts, MIN_GROUP_BYTES)
    groups: list[list[tuple[str, nn.Module]]] = [[]]
    total = 0
    for name, module in holders:
        if groups[-1] and total + own_bytes(module) > limit:
            groups.append([])
            total = 0
        groups[-1].append((name, module))
        total += own_bytes(module)
    return [group for group in groups if group]


def _receive_buffers(model: nn.Module, buffers: dict[str, torch.Tensor], device: torch.device) -> None:
    """Give every buffer rank 0's value on `device`, the non-persistent ones (rotary caches) included.

    The state dict carries only the persistent ones, and every rank's buffers are meta at this point (FSDP2 does not
    shard buffers); sending all of them keeps this to one rule.
    """
    backend_device = _backend_device(device)
    for module_name, name, buffer in _buffers(model):
        if dist.get_rank() == 0:
            staged = buffers[_name(module_name, name)].to(backend_device)
        else:
            staged = torch.empty(buffer.shape, dtype=buffer.dtype, device=backend_device)
        dist.broadcast(staged, src=0)
        module = model.get_submodule(module_name)
        module._buffers[name] = staged.to(device)


def _buffers(model: nn.Module) -> Iterator[tuple[str, str, torch.Tensor]]:
    """(module name, buffer name, buffer) of every buffer, in the same order on every rank."""
    for module_name, module in model.named_modules():
        for name, buffer in module._buffers.items():
            if buffer is not None:
                yield module_name, name, buffer


def _name(module_name: str, name: str) -> str:
    return f"{module_name}.{name}" if module_name else name


def _backend_device(device: torch.device) -> torch.device:
    # gloo sends CPU tensors, nccl CUDA ones: stage each buffer where the default group's backend can send it
    if dist.get_backend() == "nccl":
        return device if device.type == "cuda" else torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
