"""`FSDP2Strategy`: Lightning's ModelParallelStrategy set up for fully sharded data parallelism over every rank.

`--trainer.strategy fsdp2` (or `lit_daa.strategies.FSDP2Strategy` by class_path, to set its options) shards the
policy and the reference with FSDP2 in `DAAModule.configure_model` (see `lit_daa.sharding`). Every process is a
data-parallel rank, whatever the nodes and devices per node; Lightning's own FSDP1 (`strategy="fsdp"`) is not used.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.strategies import ModelParallelStrategy, StrategyRegistry

from lit_daa.checkpoint_io import restore_checkpoint, staging_path, swap_in
from lit_daa.errors import InputError
from lit_daa.sharding import FSDP2Sharding, check_replicas

SUPPORTED_DEVICES = ("cuda", "cpu")


class FSDP2Strategy(ModelParallelStrategy):
    """FSDP2 over all ranks (`num_nodes` x `devices`), with sharded (distributed) checkpoints by default.

    Args:
        param_dtype: dtype the policy computes in (gathered parameters); None: the dtype it is stored in.
        reduce_dtype: dtype of the gradient reduce-scatter.
        reference_param_dtype: dtype the reference computes in.
        reshard_after_forward: free the policy's gathered blocks between its forward and backward.
        cpu_offload: keep shards, gradients and optimizer state in CPU memory (GPUs only).
        block_class: class name of the transformer block; None: from the model's `_no_split_modules`.
        save_distributed_checkpoint: each rank writes its shard (a folder `last.ckpt/`); False gathers one file on
            rank 0. Either resumes at the same world size; a distributed checkpoint also reshards to another one
            at an epoch boundary. A distributed checkpoint is written into a staging folder beside its path and
            swapped in once every rank is done, so the last complete one survives a kill during the write.
        process_group_backend: None: nccl on CUDA, gloo on CPU.
        replicas: HSDP across this many groups of ranks (usually `num_nodes`): shard within a node, replicate
            across nodes; 1: shard over every rank (see `lit_daa.sharding.FSDP2Sharding`).
    """

    def __init__(
        self,
        param_dtype: str | None = "bfloat16",
        reduce_dtype: str | None = "float32",
        reference_param_dtype: str | None = "bfloat16",
        reshard_after_forward: bool = True,
        cpu_offload: bool = False,
        block_class: str | None = None,
        save_distributed_checkpoint: bool = True,
        process_group_backend: str | None = None,
        replicas: int = 1,
    ) -> None:
        super().__init__(
            data_parallel_size="auto",
            tensor_parallel_size=1,
            save_distributed_checkpoint=save_distributed_checkpoint,
            process_group_backend=process_group_backend,
        )
        self.sharding = FSDP2Sharding(
            param_dtype, reduce_dtype, reference_param_dtype, reshard_after_forward, cpu_offload, block_class, replicas
        )

    def _configure_launcher(self) -> None:
        # Runs in the launching process before any rank starts: the place to refuse a device FSDP2 cannot use.
        device = self.parallel_devices[0] if self.parallel_devices else None
        if device is not None and device.type not in SUPPORTED_DEVICES:
            raise InputError(
                f"trainer.strategy fsdp2 runs on CUDA GPUs or CPUs, not on '{device.type}' "
                "(use --trainer.accelerator gpu or cpu)"
            )
        # before any process group exists (a refusal later would leave one, and its port, behind)
        self.sharding.check_ranks(self.num_nodes * len(self.parallel_devices or ()))
        super()._configure_launcher()

    def setup_environment(self) -> None:
        # Every process is a data-parallel rank: FSDP shards over all of them (ModelParallelStrategy's "auto"
        # would make each node one data-parallel rank and split within nodes by tensor parallelism).
        self._data_parallel_size = self.num_nodes * self.num_processes
        super().setup_environment()

    def save_checkpoint(self, checkpoint: dict[str, Any], filepath: _PATH, storage_options: Any | None = None) -> None:
        """Write a sharded checkpoint beside `filepath` and swap it in only once every rank has written its shard.

        Lightning writes the new shards into the existing folder in place, so a kill mid-save leaves a mix of two
        checkpoints; here the old one stays whole until the new one is (see `lit_daa.checkpoint_io.swap_in`).
        """
        if not self._save_distributed_checkpoint:
            return super().save_checkpoint(checkpoint, filepath, storage_options)  # one file, via the CheckpointIO
        path = Path(self.broadcast(filepath))
        staging = staging_path(path)
        if self.global_rank == 0 and staging.exists():
            shutil.rmtree(staging)  # left by a save that was killed
        self.barrier("lit_daa.staging_cleared")
        super().save_checkpoint(checkpoint, staging, storage_options)
        self.barrier("lit_daa.staging_written")  # every rank's shard is on disk, and rank 0's trainer state
        if self.global_rank == 0:
            swap_in(staging, path)
        self.barrier("lit_daa.checkpoint_swapped")

    def load_checkpoint(self, checkpoint_path: _PATH, weights_only: bool | None = None) -> dict[str, Any]:
        """Lightning's load, after putting back a checkpoint that a save killed between its two renames set aside."""
        path = Path(self.broadcast(checkpoint_path))
        if self.global_rank == 0:
            restore_checkpoint(path)
        self.barrier("lit_daa.checkpoint_restored")
        return super().load_checkpoint(path, weights_only)


if "fsdp2" not in StrategyRegistry:
    StrategyRegistry.register(
        "fsdp2", FSDP2Strategy, description="FSDP2 over every rank: policy and reference sharded per block"
    )


def check_strategy(value: object) -> None:
    """Refuse, in one sentence, a `trainer.strategy` that lit-daa cannot shard its two models with."""
    name = value if isinstance(value, str) else getattr(value, "class_path", None) or type(value).__name__
    name = str(name)
    init_args = getattr(value, "init_args", None)
    if init_args is not None and "replicas" in init_args:  # checked here too: jsonargparse hides a constructor's own
        check_replicas(init_args["replicas"])
    fsdp1 = name.startswith("fsdp") and name != "fsdp2" or name.rsplit(".", 1)[-1] == "FSDPStrategy"
    if fsdp1:
        raise InputError(
            f"trainer.strategy '{name}' is Lightning's FSDP1, which lit-daa does not use: shard the policy and the "
            "reference with FSDP2 instead (--trainer.strategy fsdp2, or --config configs/presets/fsdp.yaml)"
        )
