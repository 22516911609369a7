"""How a sweep runs `lit-daa fit`: in this process, or in a fresh Python process per run.

In-process starts fast (torch, Lightning and transformers are imported once) and suits small CPU sweeps. A
subprocess per run costs an interpreter start, but a crash, a leaked CUDA allocation or a hung data worker dies
with the run instead of taking the sweep down.
"""

from __future__ import annotations

import gc
import signal
import subprocess
import sys
import threading
import traceback
from abc import ABC, abstractmethod
from pathlib import Path

import torch


class FitRunner(ABC):
    """Runs `lit-daa fit <args>` and returns its exit code (0: the fit finished)."""

    @abstractmethod
    def fit(self, args: list[str], log_path: Path) -> int:
        """Run the fit; `log_path` is where its output goes when the runner captures it."""


class InProcessRunner(FitRunner):
    """`lit_daa.cli.main(["fit", ...])` in this process; output goes to this process's stdout/stderr.

    Ctrl-C: Lightning turns it into a graceful stop, ignores SIGINT from then on and exits with code 1. This runner
    gives SIGINT its handler back and re-raises KeyboardInterrupt, so the sweep stops instead of going on.
    """

    def fit(self, args: list[str], log_path: Path) -> int:
        from lit_daa.cli import main

        watch = threading.current_thread() is threading.main_thread()  # signal handlers live in the main thread
        handler = signal.getsignal(signal.SIGINT) if watch else None
        try:
            return main(["fit", *args])
        except SystemExit as exit_:  # jsonargparse reports bad options by exiting
            return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        except Exception:  # any crash of one run is that run's failure, not the sweep's
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log_path.write_text(traceback.format_exc(), encoding="utf-8")
            print(traceback.format_exc(), file=sys.stderr)
            return 1
        finally:
            # The Trainer, model and optimizer of the run are garbage now; give their memory back before the next.
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if watch and signal.getsignal(signal.SIGINT) is signal.SIG_IGN and handler is not signal.SIG_IGN:
                signal.signal(signal.SIGINT, handler)
                raise KeyboardInterrupt  # Lightning swallowed the user's Ctrl-C; pass it on


class SubprocessRunner(FitRunner):
    """`python -m lit_daa.cli fit ...` in a child process, its output written to `log_path`.

    Args:
        python: the interpreter; default: this one.
    """

    def __init__(self, python: str | None = None) -> None:
        self.python = python or sys.executable
        self.process: subprocess.Popen | None = None  # the running child, for whoever needs to signal it

    def fit(self, args: list[str], log_path: Path) -> int:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("a", encoding="utf-8") as log:
            self.process = subprocess.Popen(
                [self.python, "-m", "lit_daa.cli", "fit", *args], stdout=log, stderr=subprocess.STDOUT
            )
            try:
                return self.process.wait()
            except KeyboardInterrupt:  # Ctrl-C reached the child too: let Lightning stop it gracefully
                try:
                    self.process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    pass
                raise
            finally:
                if self.process.poll() is None:  # the sweep itself is going down: do not leave an orphan
                    self.process.kill()
                    self.process.wait()
                self.process = None


RUNNERS: dict[str, type[FitRunner]] = {"inprocess": InProcessRunner, "subprocess": SubprocessRunner}
