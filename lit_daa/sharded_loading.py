"""Loading under FSDP2 without one full copy of each model per process: rank 0 reads, the others receive shards.

Under a sharding strategy with more than one rank, only global rank 0 loads the real weights (`from_pretrained`,
an adapter merged in, as on one process); every other rank builds the same model on the meta device (no memory,
`lit_daa.models.load_causal_lm(..., empty=True)`). LoRA adapters are put on every rank's model, then all ranks
shard it (`FSDP2Sharding.shard`), the other ranks allocate only their shards (`to_empty`), and
`set_model_state_dict(..., broadcast_from_rank0=True)` sends rank 0's tensors one at a time, each rank keeping its
slice. So a node holds one whole copy of each model (rank 0's, while it broadcasts) plus one shard per rank, not
one copy per rank.

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

        Rank 0's full state dicts are taken before the block (sharding drops the models' references to the whole
        tensors; the dicts keep them until they are sent, then free them, one model after the other).

        Args:
            models: the models sharded inside the block (None entries: no model, skipped).
            device: the device the models run on (the strategy's root device).
            cpu_offload: FSDP2 keeps the parameter shards in CPU memory (then only the buffers go to `device`).
        """
        if not self.active:
            yield
            return
        held = [model for model in models if model is not None]
        full = [model.state_dict() if dist.get_rank() == 0 else {} for model in held]
        yield
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)
        for index, model in enumerate(held):
            if self.empty:
                _allocate(model, device, cpu_offload)
            set_model_state_dict(model, full[index], options=options)
            full[index] = {}  # rank 0: free this model's whole tensors before sending the next one
            _broadcast_buffers(model, device)


def _allocate(model: nn.Module, device: torch.device, cpu_offload: bool) -> None:
    """Give an empty (meta) model real, uninitialised storage: its shards only, since it is sharded by now."""
    model.to_empty(device=torch.device("cpu") if cpu_offload else device)
    if cpu_offload:  # FSDP2 offloads parameter shards, never buffers: those live on the device, as on rank 0
        for module in model.modules():
            for name, buffer in module._buffers.items():
                if buffer is not None:
                    module._buffers[name] = buffer.to(device)


def _broadcast_buffers(model: nn.Module, device: torch.device) -> None:
    """Copy rank 0's buffers into every rank's, the non-persistent ones (rotary caches) included.

    The persistent ones already came with the state dict; sending them again keeps this to one rule for all.
    """
    backend_device = _backend_device(device)
    for _, buffer in model.named_buffers():
        staged = buffer if buffer.device == backend_device else buffer.to(backend_device)
        dist.broadcast(staged, src=0)
        if staged is not buffer:
            buffer.copy_(staged)


def _backend_device(device: torch.device) -> torch.device:
    # gloo sends CPU tensors, nccl CUDA ones: stage each buffer where the default group's backend can send it
    if dist.get_backend() == "nccl":
        return device if device.type == "cuda" else torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
