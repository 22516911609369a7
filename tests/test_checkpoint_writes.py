"""Checkpoint writes that never destroy last.ckpt, one fit per output folder, and a full disk.

The kills are deterministic: a forked copy of this process (a real process, SIGKILLed) writes a first checkpoint,
then dies a fixed number of bytes into the second, with TMPDIR on another filesystem (tmpfs under /dev/shm) than
the checkpoint folder. Lightning's own TorchCheckpointIO fails the same kill; lit-daa's AtomicCheckpointIO keeps
the first checkpoint. The slow tests do the same inside real `lit-daa fit` runs (one process, and FSDP2 over two
gloo processes) and resume from what survived.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch import Trainer

from lit_daa.checkpoint_io import (
    AtomicCheckpointIO,
    CheckpointWriteError,
    clear_interrupted_writes,
    no_space_errno,
    previous_path,
    staging_path,
)
from lit_daa.cli import main
from lit_daa.errors import InputError
from lit_daa.run_lock import LOCK_NAME, RunLock, hold_output_folder, starts_the_run

ROOT = Path(__file__).resolve().parents[1]
KILL_AFTER = 100_000  # bytes of the second checkpoint written before the kill (it is ~1 MB)


def checkpoint(step: int) -> dict:
    return {"global_step": step, "weights": torch.full((1 << 18,), float(step))}


def in_child(body: Callable[[], None]) -> int:
    """Run `body` in a forked copy of this process; its wait status (a SIGKILL: -9)."""
    pid = os.fork()
    if pid == 0:
        try:
            body()
            os._exit(0)
        except BaseException as err:
            print(f"child: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


@pytest.fixture
def other_tmpdir(tmp_path: Path) -> Iterator[Path]:
    """A TMPDIR on another filesystem than tmp_path (tmpfs), as on clusters with checkpoints on NFS or Lustre."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on another filesystem than the test's temporary folder")
    folder = Path(tempfile.mkdtemp(dir=shm, prefix="lit-daa-test-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def save_twice_and_die(io: TorchCheckpointIO, target: Path, tmpdir: Path, arm: Callable[[], None]) -> int:
    """In a child with TMPDIR=tmpdir: save step 1 whole, arm the kill, save step 2 (killed during its write)."""

    def body() -> None:
        os.environ["TMPDIR"] = str(tmpdir)
        tempfile.tempdir = None  # re-read TMPDIR
        io.save_checkpoint(checkpoint(1), target)
        arm()
        io.save_checkpoint(checkpoint(2), target)

    return in_child(body)


def kill_in_copy(after_bytes: int) -> None:
    """Make the next cross-filesystem copy (shutil uses os.sendfile on Linux) die after `after_bytes` bytes."""
    send = os.sendfile

    def send_then_kill(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        send(out_fd, in_fd, offset, min(count, after_bytes))
        os.fsync(out_fd)
        os.kill(os.getpid(), signal.SIGKILL)
        return 0

    os.sendfile = send_then_kill


def test_kill_mid_save_keeps_the_previous_last_ckpt(
    tmp_path: Path, other_tmpdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "tests"))
    from plugins.write_faults import kill_in_write

    target = tmp_path / "checkpoints" / "last.ckpt"
    status = save_twice_and_die(AtomicCheckpointIO(), target, other_tmpdir, lambda: kill_in_write(1, KILL_AFTER))
    assert status == -signal.SIGKILL

    survived = AtomicCheckpointIO().load_checkpoint(target, weights_only=True)
    assert survived["global_step"] == 1 and torch.equal(survived["weights"], checkpoint(1)["weights"])
    partial = [p for p in target.parent.iterdir() if p != target]
    assert len(partial) == 1 and partial[0].name.startswith(".last.ckpt.") and partial[0].name.endswith(".partial")
    assert partial[0].stat().st_size == KILL_AFTER  # the kill did land inside the second write
    assert list(other_tmpdir.iterdir()) == []  # nothing went through TMPDIR

    clear_interrupted_writes(target.parent)  # what the next fit start does
    assert list(target.parent.iterdir()) == [target]


def test_lightning_own_write_loses_last_ckpt_in_the_same_kill(tmp_path: Path, other_tmpdir: Path) -> None:
    # The kill test above can fail: Lightning's TorchCheckpointIO stages in TMPDIR and, across filesystems,
    # copies over the old file, so the same kill truncates last.ckpt and leaves a checkpoint-sized file in TMPDIR.
    target = tmp_path / "checkpoints" / "last.ckpt"
    status = save_twice_and_die(TorchCheckpointIO(), target, other_tmpdir, lambda: kill_in_copy(KILL_AFTER))
    assert status == -signal.SIGKILL, "Lightning's write no longer copies across filesystems: see checkpoint_io"
    assert target.stat().st_size == KILL_AFTER
    with pytest.raises(Exception):  # noqa: B017 - torch's zip reader error for a truncated file
        TorchCheckpointIO().load_checkpoint(target, weights_only=True)
    assert len(list(other_tmpdir.iterdir())) == 1


def test_full_disk_names_the_path_and_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    target = tmp_path / "checkpoints" / "last.ckpt"
    message = tmp_path / "message.txt"

    def body() -> None:
        io = AtomicCheckpointIO()
        io.save_checkpoint(checkpoint(1), target)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (KILL_AFTER, resource.RLIM_INFINITY))
        try:
            io.save_checkpoint(checkpoint(2), target)
        except CheckpointWriteError as err:
            resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
            message.write_text(f"{err.errno} {err}")

    assert in_child(body) == 0
    code, sentence = message.read_text().split(" ", 1)
    assert int(code) == errno.EFBIG
    assert sentence == (
        f"no room to write checkpoint {target} (File too large); the previous last.ckpt there is kept intact, so "
        f"free space (or raise the file-size limit) and resume with --ckpt_path {target}"
    )
    assert AtomicCheckpointIO().load_checkpoint(target, weights_only=True)["global_step"] == 1
    assert list(target.parent.iterdir()) == [target]  # the partial file was removed


def sharded(folder: Path, step: int, complete: bool = True) -> Path:
    """A sharded checkpoint folder as DCP and Lightning lay it out (complete: with its index and trainer state)."""
    folder.mkdir(parents=True)
    (folder / "__0_0.distcp").write_bytes(bytes([step]) * 64)
    if complete:
        (folder / ".metadata").write_bytes(b"index")
        torch.save({"global_step": step}, folder / "meta.pt")
    return folder


def test_interrupted_sharded_swap_is_undone_at_fit_start(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # killed between the two renames: the old checkpoint is parked, the new one still in staging
    last = tmp_path / "a" / "last.ckpt"
    sharded(previous_path(last), step=2)
    sharded(staging_path(last), step=4, complete=False)
    clear_interrupted_writes(last.parent)
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.ckpt"]
    assert torch.load(last / "meta.pt")["global_step"] == 2
    assert f"restored {last} from .last.ckpt.prev" in capsys.readouterr().err

    # killed after the new one was in place: the parked one is stale
    last = tmp_path / "b" / "last.ckpt"
    sharded(last, step=4)
    sharded(previous_path(last), step=2)
    clear_interrupted_writes(last.parent)
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.ckpt"]
    assert torch.load(last / "meta.pt")["global_step"] == 4


def lock_record(folder: Path) -> dict:
    return json.loads((folder / LOCK_NAME).read_text())


def test_second_fit_into_a_live_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from lit_daa.run_lock import RunLock; RunLock(sys.argv[1]).acquire();"
         " print('held', flush=True); time.sleep(120)", str(root)],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        quickstart = str(ROOT / "configs" / "quickstart.yaml")
        assert main(["fit", "--config", quickstart, f"--trainer.default_root_dir={root}"]) == 2
        err = capsys.readouterr().err
        assert (
            f"lit-daa: error: trainer.default_root_dir {root} is in use by a running lit-daa fit (pid {holder.pid} "
            f"on host {socket.gethostname()}, started " in err
        )
        assert "wait for it to end, or choose another --trainer.default_root_dir" in err
        assert "Traceback" not in err
        assert sorted(p.name for p in root.iterdir()) == [LOCK_NAME]  # nothing written, the holder's lock kept
        assert lock_record(root)["pid"] == holder.pid
    finally:
        holder.kill()
        holder.wait()


def test_stale_and_foreign_locks(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": dead_pid, "host": socket.gethostname()}))
    lock = RunLock(tmp_path)
    lock.acquire()
    assert f"taking over {tmp_path / LOCK_NAME} from pid {dead_pid}" in capsys.readouterr().err
    assert lock_record(tmp_path)["pid"] == os.getpid()
    lock.release()
    assert not (tmp_path / LOCK_NAME).exists()

    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "node-elsewhere", "started": "2025-01-01"}))
    with pytest.raises(InputError, match="on host node-elsewhere .* delete .*lit-daa.lock and rerun"):
        RunLock(tmp_path).acquire()


def test_a_killed_but_unreaped_owner_is_stale(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # A fit killed with its parent (a sweep's process group) stays a zombie until someone reaps it: it answers
    # signals like a live process, but holds nothing.
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    while Path(f"/proc/{zombie.pid}/stat").read_text().split(")")[1].split()[0] != "Z":
        pass  # exited, not yet waited for
    try:
        (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": zombie.pid, "host": socket.gethostname()}))
        lock = RunLock(tmp_path)
        lock.acquire()
        assert f"taking over {tmp_path / LOCK_NAME} from pid {zombie.pid}" in capsys.readouterr().err
        lock.release()
    finally:
        zombie.wait()


def test_only_the_launching_process_takes_the_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # held by a live process that is not this one (the test runner's parent)
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname()}))
    trainer = Trainer(accelerator="cpu", devices=2, strategy="ddp", default_root_dir=tmp_path, logger=False)
    monkeypatch.setenv("LOCAL_RANK", "1")  # what Lightning's launcher sets in the ranks it re-runs
    assert not starts_the_run(trainer)
    with hold_output_folder(trainer) as holder:
        assert not holder
    monkeypatch.delenv("LOCAL_RANK")
    assert starts_the_run(trainer)
    with pytest.raises(InputError, match="is in use by a running lit-daa fit"), hold_output_folder(trainer):
        pass


# --- slow: real `lit-daa fit` runs -------------------------------------------------------------------------------


def fit(root: Path, *extra: str, devices: int = 1, env: dict | None = None) -> subprocess.CompletedProcess:
    """`lit-daa fit` on 64 quickstart pairs, 4 steps, a checkpoint every 2, as a user runs it."""
    command = [
        sys.executable,
        "-m",
        "lit_daa.cli",
        "fit",
        "--config",
        str(ROOT / "configs" / "quickstart.yaml"),
        "--trainer.accelerator=cpu",
        f"--trainer.devices={devices}",
        f"--trainer.default_root_dir={root}",
        "--trainer.max_steps=4",
        "--trainer.val_check_interval=4",
        "--checkpoint.every_n_train_steps=2",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--data.source.init_args.num_train=64",
        "--data.source.init_args.num_val=16",
        f"--data.batch_size={8 // devices}",
        *extra,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "tests"), **(env or {})}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


def callback(class_path: str, **init_args: object) -> str:
    return "--trainer.callbacks+=" + json.dumps({"class_path": class_path, "init_args": init_args})


def global_step(path: Path) -> int:
    meta = path / "meta.pt" if path.is_dir() else path
    return torch.load(meta, map_location="cpu", weights_only=False)["global_step"]


@pytest.mark.slow
def test_fit_killed_mid_save_resumes_from_the_surviving_last_ckpt(tmp_path: Path, other_tmpdir: Path) -> None:
    root, env = tmp_path / "run", {"TMPDIR": str(other_tmpdir)}
    killed = fit(root, callback("plugins.write_faults.KillInCheckpointWrite", save=2, after_bytes=KILL_AFTER), env=env)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    last = root / "checkpoints" / "last.ckpt"
    assert global_step(last) == 2
    assert [p.name.endswith(".partial") for p in last.parent.iterdir()].count(True) == 1
    assert (root / LOCK_NAME).exists()  # the killed fit's lock, stale now

    resumed = fit(root, "--ckpt_path=last", env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "taking over" in resumed.stderr and "global step: 4" in resumed.stdout
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.ckpt"]
    assert not (root / LOCK_NAME).exists() and list(other_tmpdir.iterdir()) == []


@pytest.mark.slow
def test_fit_on_a_full_disk_ends_in_one_sentence(tmp_path: Path) -> None:
    root = tmp_path / "run"
    full = fit(root, callback("plugins.write_faults.FileSizeLimitAtSave", save=2, limit=KILL_AFTER))
    last = root / "checkpoints" / "last.ckpt"
    assert full.returncode == 1, full.stderr[-3000:]
    assert (
        f"lit-daa: error: no room to write checkpoint {last} (File too large); the previous last.ckpt there is kept "
        f"intact, so free space (or raise the file-size limit) and resume with --ckpt_path {last}"
    ) in full.stderr
    assert "Traceback" not in full.stderr
    assert global_step(last) == 2
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.ckpt"]


@pytest.mark.slow
def test_fsdp2_killed_mid_sharded_save_keeps_the_last_complete_checkpoint(tmp_path: Path) -> None:
    root = tmp_path / "run"
    fsdp2 = [
        "--trainer.strategy=lit_daa.strategies.FSDP2Strategy",
        "--trainer.strategy.param_dtype=float32",
        "--trainer.strategy.reference_param_dtype=float32",
    ]
    killed = fit(root, *fsdp2, callback("plugins.write_faults.KillAfterShards", save=2), devices=2)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    last = root / "checkpoints" / "last.ckpt"
    assert global_step(last) == 2
    # written in place (Lightning's way), step 4's shards would now sit beside step 2's trainer state
    state_written = (last / "meta.pt").stat().st_mtime_ns
    assert all(p.stat().st_mtime_ns <= state_written for p in last.iterdir())
    staging = staging_path(last)
    assert staging.is_dir() and not (staging / "meta.pt").exists()

    resumed = fit(root, *fsdp2, "--ckpt_path=last", devices=2)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "global step: 4" in resumed.stdout
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.ckpt"]
    assert global_step(last) == 4


def test_safetensors_no_room_is_recognised(tmp_path: Path) -> None:
    # save_pretrained writes with safetensors, whose error names the OS error only in its text
    from safetensors.torch import save_file

    report = tmp_path / "report.txt"

    def body() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (KILL_AFTER, resource.RLIM_INFINITY))
        try:
            save_file({"w": torch.zeros(4 * KILL_AFTER)}, str(tmp_path / "w.safetensors"))
        except Exception as err:
            resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
            report.write_text(f"{no_space_errno(err)}|{no_space_errno(ValueError(str(err).replace('27', '2')))}")

    assert in_child(body) == 0
    assert report.read_text() == f"{errno.EFBIG}|None"


def test_export_on_a_full_disk_keeps_the_checkpoint_and_leaves_no_half_model(tmp_path: Path) -> None:
    root = tmp_path / "run"
    full = fit(root, callback("plugins.write_faults.FileSizeLimitAtFitEnd", limit=KILL_AFTER))
    last = root / "checkpoints" / "last.ckpt"
    assert full.returncode == 1, full.stderr[-3000:]
    assert (
        f"lit-daa: error: no room to write {root / 'hf_policy'} (File too large); no hf_policy was written, and the "
        f"trained state is in {last}: free space and resume with --ckpt_path {last} to write it"
    ) in full.stderr
    assert "Traceback" not in full.stderr
    assert global_step(last) == 4
    assert not (root / "hf_policy").exists() and not (root / ".staging-hf_policy").exists()
    assert not (root / LOCK_NAME).exists()  # released on the error
