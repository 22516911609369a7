"""Checkpoint writes that never destroy the last checkpoint, whatever the filesystem layout.

Lightning's `TorchCheckpointIO` writes through an fsspec transaction whose temporary file lives in TMPDIR. When
TMPDIR is another filesystem than the checkpoint folder (tmpfs beside NFS or Lustre, the usual cluster and
container layout) the commit cannot rename and copies over the old file instead: a kill during that copy leaves
`last.ckpt` truncated, and every kill leaves a checkpoint-sized file in TMPDIR. `AtomicCheckpointIO` writes the
temporary file beside its target (`.last.ckpt.<random>.partial`), fsyncs it, renames it onto the target (atomic
within one folder) and fsyncs the folder, so the target is always either the old checkpoint or the new one.

Sharded (distributed) checkpoints are folders: `lit_daa.strategies.FSDP2Strategy` writes each one into a staging
folder (`.last.ckpt.staging`) and swaps it in with `swap_in` once every rank is done, parking the old one as
`.last.ckpt.prev` for the instant between the two renames. `clear_interrupted_writes` undoes what a kill left:
it removes partial files and staging folders and puts back a parked checkpoint whose successor never arrived.
"""

from __future__ import annotations

import errno
import io
import os
import re
import secrets
import shutil
import sys
from pathlib import Path
from typing import Any

import torch
from fsspec.implementations.local import LocalFileSystem
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

# errors that mean "no room for this file": a full disk, a full quota, a file-size limit
NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
# `.last.ckpt.1f2e3d4c.partial`; `.last.ckpt.staging`; `.last.ckpt.prev` (none ends in .ckpt, so Lightning's
# `--ckpt_path last` never picks one)
_PARTIAL = re.compile(r"^\.(?P<name>.+)\.[0-9a-f]+\.partial$")
_STAGING = re.compile(r"^\.(?P<name>.+)\.staging$")
_PREVIOUS = re.compile(r"^\.(?P<name>.+)\.prev$")
# what a complete sharded checkpoint folder holds: DCP's index (written last by DCP) and Lightning's trainer state
_SHARDED_MARKERS = (".metadata", "meta.pt")
_OS_ERROR = re.compile(r"\(os error (\d+)\)")


class CheckpointWriteError(OSError):
    """A checkpoint or an export could not be written for lack of space; the message names the path and what was
    kept."""


def no_space_errno(err: BaseException) -> int | None:
    """The errno when `err` means "no room for this file", else None.

    safetensors (which `save_pretrained` writes with) reports the OS error only in its text, "... (os error 27)".
    """
    if isinstance(err, OSError):
        return err.errno if err.errno in NO_SPACE else None
    found = _OS_ERROR.search(str(err))
    return int(found.group(1)) if found and int(found.group(1)) in NO_SPACE else None


def partial_path(target: Path) -> Path:
    """A fresh temporary name beside `target`, so the final rename never crosses filesystems."""
    return target.parent / f".{target.name}.{secrets.token_hex(4)}.partial"


def staging_path(target: Path) -> Path:
    """The folder a sharded checkpoint for `target` is written into before it is swapped in."""
    return target.parent / f".{target.name}.staging"


def previous_path(target: Path) -> Path:
    """Where the last complete checkpoint waits while its successor is renamed into place."""
    return target.parent / f".{target.name}.prev"


def fsync_folder(folder: Path) -> None:
    """Make the renames inside `folder` durable (a no-op where folders cannot be opened, as on Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some network filesystems refuse fsync on a folder; the rename itself is still atomic
    finally:
        os.close(fd)


def no_space_error(target: Path, err: OSError) -> CheckpointWriteError:
    """The one-sentence error for a checkpoint that did not fit, saying what is left at `target`."""
    if target.exists():
        kept = f"the previous {target.name} there is kept intact, so free space (or raise the file-size limit) and "
        kept += f"resume with --ckpt_path {target}"
    else:
        kept = "no earlier checkpoint was at that path, so free space (or raise the file-size limit) and rerun"
    error = CheckpointWriteError(f"no room to write checkpoint {target} ({os.strerror(err.errno)}); {kept}")
    error.errno = err.errno
    return error


def write_atomically(target: Path, data: bytes | memoryview) -> None:
    """Write `data` to `target` so that a kill at any instant leaves either the old file or the new one.

    Raises:
        CheckpointWriteError: the disk, the quota or the file-size limit had no room (the old file is untouched).
    """
    temp = partial_path(target)
    try:
        with open(temp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, target)
    except BaseException as err:
        temp.unlink(missing_ok=True)
        if no_space_errno(err) is not None:
            raise no_space_error(target, err) from None
        raise
    fsync_folder(target.parent)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's TorchCheckpointIO with a write that can never leave a truncated checkpoint (see module doc).

    Remote paths (s3://, gs://, ...) keep Lightning's write: object stores replace an object whole.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        """Serialise `checkpoint` and write it to `path` atomically, beside it rather than in TMPDIR."""
        if storage_options is not None or not isinstance(get_filesystem(path), LocalFileSystem):
            return super().save_checkpoint(checkpoint, path, storage_options)
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        # serialised in memory first, as Lightning does: torch's zip writer would hide an OSError from the file
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        write_atomically(target, buffer.getbuffer())


def use_atomic_checkpoints(trainer: Trainer) -> None:
    """Give `trainer`'s strategy an AtomicCheckpointIO when it has Lightning's plain one (a chosen plugin stays)."""
    if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
        trainer.strategy.checkpoint_io = AtomicCheckpointIO()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def is_complete(path: Path) -> bool:
    """Whether `path` holds a whole checkpoint: a file, or a sharded folder with DCP's index and the trainer state."""
    if path.is_dir():
        return all((path / marker).is_file() for marker in _SHARDED_MARKERS)
    return path.is_file()


def fsync_tree(folder: Path) -> None:
    """Flush every file of a freshly written checkpoint folder, then the folder, before it is renamed into place."""
    for file in folder.rglob("*"):
        if file.is_file():
            with open(file, "rb") as f:
                os.fsync(f.fileno())
    fsync_folder(folder)


def swap_in(staging: Path, target: Path) -> None:
    """Replace `target` by the complete checkpoint `staging`, keeping the old one until the new one is in place."""
    fsync_tree(staging)
    previous = previous_path(target)
    if target.exists() or target.is_symlink():
        if previous.exists():
            _remove(previous)
        os.replace(target, previous)
    os.replace(staging, target)
    fsync_folder(target.parent)
    if previous.exists():
        _remove(previous)


def restore_checkpoint(target: Path) -> None:
    """Put back the parked previous checkpoint when a kill came between `swap_in`'s two renames."""
    previous = previous_path(target)
    if target.exists() or not previous.exists():
        return
    if is_complete(previous):
        os.replace(previous, target)
        fsync_folder(target.parent)
        print(
            f"lit-daa: note: restored {target} from {previous.name}, the last complete checkpoint, which an "
            "interrupted save had set aside",
            file=sys.stderr,
        )


def clear_interrupted_writes(folder: str | Path) -> None:
    """Undo what killed checkpoint writes left in `folder`: partial files, staging folders, parked checkpoints.

    Call it only where no other process writes into `folder` (the fit that holds the output folder's lock).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return
    for entry in sorted(folder.iterdir()):
        if _PREVIOUS.match(entry.name):
            target = folder / _PREVIOUS.match(entry.name)["name"]
            restore_checkpoint(target)
            if target.exists() and entry.exists():
                _remove(entry)  # the new checkpoint was already in place: the parked one is stale
    for entry in folder.iterdir():
        if _PARTIAL.match(entry.name) or _STAGING.match(entry.name):
            _remove(entry)


def clear_checkpoint_folders(trainer: Trainer) -> None:
    """`clear_interrupted_writes` in every folder `trainer`'s ModelCheckpoint callbacks write into (dirpath set)."""
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.dirpath:
            clear_interrupted_writes(callback.dirpath)
