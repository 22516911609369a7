"""Faults in the middle of a checkpoint write, injected from inside a real `lit-daa fit` (`--trainer.callbacks+=`).

Each callback counts the run's checkpoint saves and strikes during the `save`-th one, at a fixed point, so the
tests that use them are deterministic: a SIGKILL after a number of bytes, a file-size limit, a SIGKILL once the
shards of a sharded checkpoint are written.
"""

from __future__ import annotations

import os
import resource
import signal
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

import lit_daa.checkpoint_io


class _KillingFile:
    """A file that SIGKILLs its process once `limit` bytes have been written to it (the first `limit` land)."""

    def __init__(self, f: Any, limit: int) -> None:
        self.f, self.limit = f, limit

    def write(self, data: bytes | memoryview) -> int:
        view = memoryview(data).cast("B")
        self.f.write(view[: self.limit])
        self.f.flush()
        os.fsync(self.f.fileno())
        os.kill(os.getpid(), signal.SIGKILL)
        return 0  # never reached

    def __getattr__(self, name: str) -> Any:
        return getattr(self.f, name)

    def __enter__(self) -> _KillingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.f.close()


def kill_in_write(save: int, after_bytes: int) -> None:
    """Make the `save`-th file that `lit_daa.checkpoint_io` opens kill this process after `after_bytes` bytes."""
    opened = 0

    def open_then_kill(path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        nonlocal opened
        f = open(path, mode, *args, **kwargs)
        if "x" in mode or "w" in mode:
            opened += 1
            if opened == save:
                return _KillingFile(f, after_bytes)
        return f

    lit_daa.checkpoint_io.open = open_then_kill  # shadows the builtin in that module only


class KillInCheckpointWrite(Callback):
    """SIGKILL the process `after_bytes` bytes into writing its `save`-th single-file checkpoint.

    Args:
        save: which save (1 = the first).
        after_bytes: bytes of the new checkpoint that reach the disk before the kill.
    """

    def __init__(self, save: int, after_bytes: int) -> None:
        self.save, self.after_bytes = save, after_bytes

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        kill_in_write(self.save, self.after_bytes)


class FileSizeLimitAtSave(Callback):
    """From the `save`-th checkpoint on, no file may grow past `limit` bytes (RLIMIT_FSIZE; SIGXFSZ ignored, so a
    write past it fails with EFBIG as a full disk fails with ENOSPC).

    Args:
        save: which save (1 = the first).
        limit: the file-size limit in bytes.
    """

    def __init__(self, save: int, limit: int) -> None:
        self.save, self.limit, self.saves = save, limit, 0

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict) -> None:
        self.saves += 1  # called while the checkpoint is assembled, before it is written
        if self.saves == self.save:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (self.limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))


class KillAfterShards(Callback):
    """SIGKILL every rank once its shard of the `save`-th sharded checkpoint is written (the trainer state, written
    after the shards, never is): the moment a sharded save written in place mixes two checkpoints.

    Args:
        save: which save (1 = the first).
    """

    def __init__(self, save: int) -> None:
        self.save = save

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        import lightning.pytorch.strategies.model_parallel as model_parallel

        write_shards = model_parallel._distributed_checkpoint_save
        saves = 0

        def write_then_kill(state: dict, path: Any) -> None:
            nonlocal saves
            write_shards(state, path)
            saves += 1
            if saves == self.save:
                os.kill(os.getpid(), signal.SIGKILL)

        model_parallel._distributed_checkpoint_save = write_then_kill


class FileSizeLimitAtFitEnd(Callback):
    """When training is over, before the policy is exported, no file may grow past `limit` bytes (as above).

    A user callback's `on_fit_end` runs before the CLI's ExportPolicy, so the export meets a full disk.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
