"""FSDP2 (`torch.distributed.fsdp.fully_shard`) applied to the policy and the frozen reference.

Each transformer block is its own FSDP unit, then the root (embeddings, final norm, LM head) is one: a block's
parameters are all-gathered just before it runs and freed after, so a rank holds its 1/N shard of each model plus
one or two gathered blocks at a time. The reference is sharded the same way with its own mixed-precision policy and
always resharded after its forward, since it never runs a backward that would reuse the gathered weights.

QLoRA (a 4-bit base, `model.quantization`) is sharded the same way: each frozen 4-bit weight is first held in the
dtype the policy is gathered in (`lit_daa.quantization.store_for_sharding`: its packed bytes re-viewed, not
copied), so FSDP2 shards and all-gathers the packed rows like any weight and never casts them; each `Linear4bit`
keeps its quantization constants (`quant_state`, replicated, about 1/16 of the packed size) and rebuilds its 4-bit
weight from the gathered rows when it runs. The LoRA adapters, embeddings, norms and LM head are sharded as in a
full-precision policy. Checked on 2 gloo processes on the CPU (tests/test_fsdp_qlora.py: the losses and adapters
equal a one-process QLoRA run's); the NCCL path is run by benchmarks/gpu_check.sh.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from lit_daa.errors import InputError
from lit_daa.models import DTYPES
from lit_daa.quantization import STORAGE_DTYPES, check_storage, is_4bit, store_for_sharding


def transformer_blocks(model: nn.Module, block_class: str | None = None) -> list[nn.Module]:
    """The model's transformer blocks: modules whose class is `block_class` or in `_no_split_modules`.

    Hugging Face models list the classes that must not be split across devices in `_no_split_modules`
    (`GPTNeoXLayer`, `LlamaDecoderLayer`, ...): exactly the per-block units FSDP should shard by.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    names = {block_class} if block_class else set(getattr(base, "_no_split_modules", None) or ())
    blocks = [m for m in model.modules() if type(m).__name__ in names]
    if not blocks:
        found = f"its _no_split_modules are {sorted(names)}" if names else "it lists no _no_split_modules"
        raise InputError(
            f"cannot find the transformer blocks of {type(base).__name__} to shard ({found}, and no module has "
            "that class); name it with --trainer.strategy lit_daa.strategies.FSDP2Strategy "
            "--trainer.strategy.block_class NAME"
        )
    return blocks


def _dtype(value: str | None, option: str) -> Any:
    if value is None:
        return None
    if value not in DTYPES:
        raise InputError(f"trainer.strategy.{option} must be one of {sorted(DTYPES)} or null, got '{value}'")
    return DTYPES[value]


@dataclass
class FSDP2Sharding:
    """How `configure_model` shards the policy and the reference with FSDP2.

    Args:
        param_dtype: dtype the policy's gathered parameters compute in (None: their stored dtype).
        reduce_dtype: dtype of the gradient reduce-scatter (float32 keeps the sum exact).
        reference_param_dtype: dtype the reference's gathered parameters compute in.
        reshard_after_forward: free the policy's gathered blocks after the forward (gather again for the backward).
        cpu_offload: keep parameter shards, gradients and optimizer state in CPU memory (GPUs only).
        block_class: class name of the transformer block; None: read from the model's `_no_split_modules`.
        replicas: HSDP: split the data-parallel ranks into this many groups of consecutive ranks (a node's ranks,
            as launchers number them), shard within each group and replicate across them, so parameters are
            all-gathered inside a node and only gradients cross nodes (reduced once per step); 1: plain FSDP2 over
            every rank.
    """

    param_dtype: str | None = "bfloat16"
    reduce_dtype: str | None = "float32"
    reference_param_dtype: str | None = "bfloat16"
    reshard_after_forward: bool = True
    cpu_offload: bool = False
    block_class: str | None = None
    replicas: int = 1

    def __post_init__(self) -> None:
        for option in ("param_dtype", "reduce_dtype", "reference_param_dtype"):
            _dtype(getattr(self, option), option)
        check_replicas(self.replicas)

    def check_ranks(self, ranks: int) -> None:
        """Refuse `replicas` that do not divide the data-parallel ranks (0: not known yet, nothing to check)."""
        if ranks and ranks % self.replicas:
            raise InputError(
                f"trainer.strategy.replicas {self.replicas} must divide the {ranks} data-parallel ranks (num_nodes x "
                "devices), e.g. the number of nodes"
            )

    def mesh_for(self, data_parallel: Any) -> Any:
        """The mesh `fully_shard` takes: `data_parallel` itself, or with `replicas` > 1 a 2-D (replicate, shard) one
        over the same ranks (rank = replica x group size + position in the group), which `fully_shard` runs as HSDP."""
        if self.replicas == 1:
            return data_parallel
        ranks = data_parallel.size()
        self.check_ranks(ranks)
        from torch.distributed.device_mesh import init_device_mesh

        return init_device_mesh(
            data_parallel.device_type, (self.replicas, ranks // self.replicas), mesh_dim_names=("replicate", "shard")
        )

    def shard(self, policy: nn.Module, reference: nn.Module | None, mesh: Any) -> None:
        """Shard `policy` and `reference` (when it is a model of its own) over the data-parallel ranks of `mesh`."""
        from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, OffloadPolicy

        if "tensor_parallel" in (mesh.mesh_dim_names or ()) and mesh["tensor_parallel"].size() > 1:
            raise InputError(
                "lit-daa shards with FSDP2 over data-parallel ranks only; use --trainer.strategy fsdp2 "
                "(lit_daa.strategies.FSDP2Strategy), or ModelParallelStrategy with tensor_parallel_size 1"
            )
        if is_4bit(policy):  # before any mesh is built: a refusal here leaves no process group state behind
            store_for_sharding(policy, self.gather_dtype(policy))
        data_parallel = mesh["data_parallel"] if "data_parallel" in (mesh.mesh_dim_names or ()) else mesh
        if self.cpu_offload and data_parallel.device_type != "cuda":
            raise InputError("trainer.strategy.cpu_offload needs CUDA devices (it moves shards between GPU and CPU)")
        offload = CPUOffloadPolicy() if self.cpu_offload else OffloadPolicy()
        data_parallel = self.mesh_for(data_parallel)
        policy_mp = MixedPrecisionPolicy(
            param_dtype=_dtype(self.param_dtype, "param_dtype"), reduce_dtype=_dtype(self.reduce_dtype, "reduce_dtype")
        )
        _fully_shard(policy, data_parallel, policy_mp, self.reshard_after_forward, offload, self.block_class)
        if reference is not None:
            reference_mp = MixedPrecisionPolicy(param_dtype=_dtype(self.reference_param_dtype, "reference_param_dtype"))
            _fully_shard(reference, data_parallel, reference_mp, True, offload, self.block_class)

    def gather_dtype(self, policy: nn.Module) -> torch.dtype:
        """The dtype FSDP2 all-gathers the policy's frozen weights in: `param_dtype`, else the dtype they are held in
        (that of the input embeddings, which `model.policy_dtype` sets)."""
        dtype = _dtype(self.param_dtype, "param_dtype")
        return dtype if dtype is not None else policy.get_input_embeddings().weight.dtype


def check_quantized_sharding(strategy: object, quantization: object, policy_dtype: str | None) -> None:
    """At the CLI boundary, before any model loads: refuse a chosen `model.quantization.quant_storage` that the
    `fsdp2` strategy would cast (see `lit_daa.quantization.store_for_sharding`, which checks it again when sharding).

    `strategy` and `quantization` are the parsed config's values: a name or a class_path with init_args.
    """
    name = strategy if isinstance(strategy, str) else getattr(strategy, "class_path", None)
    if name is None or not (name == "fsdp2" or str(name).rsplit(".", 1)[-1] == "FSDP2Strategy"):
        return
    storage = (getattr(quantization, "init_args", None) or {}).get("quant_storage")
    if storage is None or storage not in STORAGE_DTYPES:
        return  # none chosen, or one FourBit itself refuses
    init_args = getattr(strategy, "init_args", None) or {}
    param_dtype = init_args.get("param_dtype", FSDP2Sharding.param_dtype)
    gather = param_dtype if param_dtype is not None else policy_dtype
    if gather in DTYPES:
        check_storage(storage, DTYPES[gather])


def check_replicas(replicas: object) -> None:
    """Refuse an HSDP replica count that is not a whole number of at least 1 (`trainer.strategy.replicas`)."""
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 1:
        raise InputError(f"trainer.strategy.replicas must be a whole number of at least 1, got {replicas!r}")


def _fully_shard(
    model: nn.Module, mesh: Any, mp_policy: Any, reshard_after_forward: bool, offload: Any, block_class: str | None
) -> None:
    from torch.distributed.fsdp import fully_shard

    for block in transformer_blocks(model, block_class):
        fully_shard(
            block, mesh=mesh, mp_policy=mp_policy, reshard_after_forward=reshard_after_forward, offload_policy=offload
        )
    # The root unit holds the embeddings, final norm and LM head (a large share of a small model's weights).
    fully_shard(
        model, mesh=mesh, mp_policy=mp_policy, reshard_after_forward=reshard_after_forward, offload_policy=offload
    )


def sharding_of(strategy: Any) -> FSDP2Sharding:
    """The sharding a ModelParallelStrategy asks for: `FSDP2Strategy`'s options, or the defaults."""
    sharding = getattr(strategy, "sharding", None)
    return sharding if isinstance(sharding, FSDP2Sharding) else FSDP2Sharding()
