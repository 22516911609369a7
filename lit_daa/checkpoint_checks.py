"""Checks of a checkpoint given to `--ckpt_path`: the file before anything loads, the model it holds at load.

A torch checkpoint is a zip archive (holding `<name>/data.pkl`); a sharded (DCP) checkpoint is a folder with a
`.metadata` file. Lightning's own keywords (`last`, `best`, `hpc`, `registry[:...]`) and remote URLs are left to
Lightning, which resolves them.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lit_daa.checkpoint_io import restore_checkpoint
from lit_daa.errors import InputError

LIGHTNING_KEYWORDS = ("last", "best", "hpc")
SHARDED_MARKER = ".metadata"  # torch.distributed.checkpoint writes it last, so a folder with it is complete
OPTION = "--ckpt_path"


def resolved_by_lightning(value: str) -> bool:
    """Whether `value` is one of Lightning's keywords or a remote URL, which Lightning resolves itself."""
    return value in LIGHTNING_KEYWORDS or value.lower().startswith("registry") or "://" in value


def check_ckpt_path(value: str | os.PathLike | None) -> None:
    """Refuse a `--ckpt_path` that cannot be a checkpoint, before the model or the data are loaded.

    Raises:
        InputError: the path is missing, unreadable, a folder without `.metadata`, a file that is not a zip
            archive holding a pickled checkpoint (truncated, or another kind of file), or a torch file that is not
            a Lightning checkpoint (a model's bare weights).
    """
    if value is None or resolved_by_lightning(str(value)):
        return
    path = Path(value).expanduser()
    restore_checkpoint(path)  # a kill between a sharded save's two renames parked the last complete one aside
    if not path.exists():
        raise InputError(
            f"{OPTION} {value} does not exist: give a checkpoint written by `lit-daa fit` (RUN/checkpoints/last.ckpt)"
        )
    if path.is_dir():
        if not (path / SHARDED_MARKER).is_file():
            raise InputError(
                f"{OPTION} {value} is a folder without {SHARDED_MARKER}, so not a (complete) sharded checkpoint: "
                "give a .ckpt file or a sharded checkpoint folder"
            )
        return
    if not os.access(path, os.R_OK):
        raise InputError(f"{OPTION} {value} is not readable by this user: fix its permissions or give another file")
    problem = _zip_problem(path) or _content_problem(path)
    if problem:
        raise InputError(
            f"{OPTION} {value} is not a Lightning checkpoint: {problem}; give a .ckpt file written by `lit-daa fit`"
        )


def _zip_problem(path: Path) -> str:
    """Why `path` is not a torch.save zip archive, or "" when it is one."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, EOFError):
        size = path.stat().st_size
        return f"it is no complete zip archive ({size} bytes): truncated by an interrupted copy, or another file"
    if not any(name.endswith("/data.pkl") or name == "data.pkl" for name in names):
        return "it is a zip archive without data.pkl"
    return ""


def _content_problem(path: Path) -> str:
    """Why the pickled content of a torch zip archive is not a Lightning checkpoint, or "" when it is one.

    Read memory-mapped, so tensors are not read; `weights_only`, as LightningCLI reads it next.
    """
    import torch

    try:
        content = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # whatever torch fails on, the file is no checkpoint to resume from
        return f"torch.load cannot read it ({(str(err).strip().splitlines() or [type(err).__name__])[0]})"
    if not isinstance(content, dict) or not {"state_dict", "pytorch-lightning_version"} <= content.keys():
        return "it holds no Lightning state_dict and version, as a model's bare weights do"
    return ""


def check_state_matches(
    model_state: Mapping[str, Any], checkpoint: Mapping[str, Any], path: object, strict: bool = True
) -> None:
    """Refuse a checkpoint whose weights do not fit the model about to receive them.

    Called where Lightning restores (the module's `on_load_checkpoint`, before `load_state_dict`), so a checkpoint
    of another model stops with one sentence instead of torch's list of every mismatched tensor. Keys under
    `reference.` are skipped: a reference is checkpointed only when it moves (TR-DPO).

    Args:
        model_state: the module's `state_dict()` (only shapes are read).
        checkpoint: the loaded checkpoint; without a `state_dict` entry (a sharded restore) nothing is checked.
        path: the checkpoint file, named in the message.
        strict: whether keys missing on either side are refused too (the module's `strict_loading`).
    """
    saved = checkpoint.get("state_dict")
    if not isinstance(saved, Mapping):
        return
    own = {k: v for k, v in model_state.items() if not k.startswith("reference.")}
    theirs = {k: v for k, v in saved.items() if not k.startswith("reference.")}
    advice = "give a checkpoint of this model (the same model.policy and model.lora settings)"
    differing = [k for k in own if k in theirs and _shape(own[k]) != _shape(theirs[k])]
    if differing:
        key = differing[0]
        more = f" (and {len(differing) - 1} more parameters)" if len(differing) > 1 else ""
        raise InputError(
            f"{OPTION} {path} holds another model: its {key} has shape {_shape(theirs[key])} where this model's "
            f"has {_shape(own[key])}{more}; {advice}"
        )
    if not strict:
        return
    missing = [k for k in own if k not in theirs]
    unexpected = [k for k in theirs if k not in own]
    if missing:
        raise InputError(
            f"{OPTION} {path} holds another model: it has no {missing[0]} ({len(missing)} of this model's "
            f"{len(own)} parameters are missing from it); {advice}"
        )
    if unexpected:
        raise InputError(
            f"{OPTION} {path} holds another model: this model has no {unexpected[0]} ({len(unexpected)} of its "
            f"{len(theirs)} parameters are not in this model); {advice}"
        )


def _shape(value: Any) -> tuple[int, ...] | None:
    shape = getattr(value, "shape", None)
    return None if shape is None else tuple(shape)
