"""One fit per output folder: a lock file in `trainer.default_root_dir`, held from before the fit's first write.

Two fits writing into one folder would mix their checkpoints, config, logs and export without a word. The fit
that starts first creates `<default_root_dir>/.lit-daa.lock` (O_CREAT|O_EXCL, so exactly one process wins) with its
pid, host and start time, and removes it when it ends, in error too. A second fit finds the file and, when its
owner is alive, is refused in one sentence naming the folder, pid and host. A lock whose owner is gone (same host,
pid no longer running, or running but started later: a recycled pid) is stale and taken over with a notice; the
owner on another host cannot be checked from here, so that one is refused with how to remove it.

Only the process that starts the run takes the lock: in a multi-process run Lightning's launcher re-runs the
command line once per extra rank (with LOCAL_RANK set), and cluster launchers start every rank (with RANK or
SLURM_PROCID set); those see rank > 0 in the strategy's cluster environment and leave the lock to rank 0.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from lit_daa.errors import InputError

if TYPE_CHECKING:  # the lock itself needs no Lightning: a holder process starts in a blink
    from lightning.pytorch import Trainer

LOCK_NAME = ".lit-daa.lock"


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first), or None where it cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: fields are counted after its closing one
    return stat[stat.rindex(")") + 2 :].split()


def _start_ticks(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot, from /proc), or None where that cannot be read."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def _alive(pid: int, start_ticks: int | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: alive
    fields = _stat_fields(pid)
    if fields and fields[0] in ("Z", "X"):
        return False  # killed and not yet reaped (its parent died too, say): it answers signals but runs nothing
    if start_ticks is not None:
        now = _start_ticks(pid)
        return now is None or now == start_ticks  # another start time: the pid was recycled
    return True


def _owner(lock: Path) -> dict | None:
    """The holder recorded in `lock`, or None when the file is gone or unreadable (a writer killed mid-write)."""
    for _ in range(2):
        try:
            owner = json.loads(lock.read_text())
            if isinstance(owner, dict) and isinstance(owner.get("pid"), int):
                return owner
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            pass
        time.sleep(0.2)  # the holder may be between creating the file and writing it
    return {}


class RunLock:
    """The lock file of one output folder, owned by this process once `acquire` returns."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "start_ticks": _start_ticks(os.getpid()),
            "command": " ".join(sys.argv),
        }

    def acquire(self) -> None:
        """Take the lock, or take over a stale one.

        Raises:
            InputError: a live fit (or one on another host) holds the folder.
        """
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise InputError(
                f"trainer.default_root_dir {self.folder} is a file, not a folder: give a folder for the run's outputs"
            ) from None
        try:
            for _ in range(10):  # bounded: each pass either creates the file or removes a stale one
                if self._create():
                    return
                owner = _owner(self.path)
                if owner is None:
                    continue  # released meanwhile: try again
                # this process's own record can only be left by an earlier fit in it: reused silently
                mine = owner.get("pid") == os.getpid() and owner.get("host") == self.record["host"]
                if not mine:
                    if owner:
                        self._refuse_if_live(owner)
                    described = f"pid {owner['pid']} on {owner.get('host')}" if owner else "an unreadable lock file"
                    note = f"lit-daa: note: taking over {self.path} from {described}, which is no longer running"
                    print(note, file=sys.stderr)
                self._remove_if_unchanged(owner)
        except PermissionError:
            raise InputError(
                f"trainer.default_root_dir {self.folder} is not writable ({self.path} cannot be created or removed): "
                "choose a folder you can write to"
            ) from None
        raise InputError(
            f"trainer.default_root_dir {self.folder} keeps being taken by other lit-daa fits ({self.path}): "
            "choose another --trainer.default_root_dir"
        )

    def release(self) -> None:
        """Remove the lock file if it is still this process's."""
        if _owner(self.path) == self.record:
            self.path.unlink(missing_ok=True)

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            json.dump(self.record, f)
            f.flush()
            os.fsync(f.fileno())
        return True

    def _refuse_if_live(self, owner: dict) -> None:
        pid, host = owner["pid"], owner.get("host")
        since = f", started {owner['started']}" if owner.get("started") else ""
        if host != self.record["host"]:
            raise InputError(
                f"trainer.default_root_dir {self.folder} is in use by a lit-daa fit on host {host} (pid {pid}{since}), "
                f"which cannot be checked from here: choose another --trainer.default_root_dir, or, if that fit is "
                f"no longer running, delete {self.path} and rerun"
            )
        if _alive(pid, owner.get("start_ticks")):
            raise InputError(
                f"trainer.default_root_dir {self.folder} is in use by a running lit-daa fit (pid {pid} on host "
                f"{host}{since}): wait for it to end, or choose another --trainer.default_root_dir"
            )

    def _remove_if_unchanged(self, owner: dict) -> None:
        # Only the stale record we judged: another process may have taken over between our read and this remove.
        if _owner(self.path) == owner:
            self.path.unlink(missing_ok=True)


def starts_the_run(trainer: Trainer) -> bool:
    """Whether this process is the run's rank 0 before any rank starts (not a rank re-launched by Lightning)."""
    environment = getattr(trainer.strategy, "cluster_environment", None)
    if environment is None:
        return True  # single-device strategies: one process
    return environment.global_rank() == 0 and environment.local_rank() == 0 and environment.node_rank() == 0


@contextmanager
def hold_output_folder(trainer: Trainer) -> Iterator[bool]:
    """Hold `trainer.default_root_dir` for the duration of the block; yields whether this process holds it.

    Raises:
        InputError: another live fit holds the folder.
    """
    if not starts_the_run(trainer):
        yield False
        return
    if "://" in str(trainer.default_root_dir):
        yield True  # a remote folder (s3://...) has no exclusive create: not locked
        return
    lock = RunLock(trainer.default_root_dir)
    lock.acquire()
    try:
        yield True
    finally:
        lock.release()
