"""Running a sweep: train what is not trained, evaluate what is not evaluated, rebuild the table.

Every fit runs as `lit-daa fit --config <run>/fit.yaml`, the run's config resolved once (`sweep.fit_config`).
Resumable by construction: a run with a DONE marker is skipped; a run whose fit did not finish is started again
from the same fit.yaml with `--ckpt_path last` when it left a checkpoint (Lightning then restores weights,
optimizer and the exact data position); evaluations already on disk are read back, not recomputed.
"""

from __future__ import annotations

import os
import pickle
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Literal

import torch
from tqdm.auto import tqdm

from lit_daa.errors import InputError
from lit_daa.sweep.config import SweepConfig
from lit_daa.sweep.evaluation import SweepEvaluator
from lit_daa.sweep.fit_config import stale_message
from lit_daa.sweep.runners import RUNNERS, FitRunner
from lit_daa.sweep.runs import ReferenceRun, Run, expand
from lit_daa.sweep.table import write_table

Stage = Literal["all", "fit", "evaluate"]


def global_rank() -> int:
    """This process's rank when launched as one of several (srun tasks, torchrun); 0 otherwise."""
    for variable in ("RANK", "SLURM_PROCID"):
        value = os.environ.get(variable, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 0


class Sweep:
    """A sweep's runs (see `expand`) and what to do with them.

    Args:
        config: the sweep.
        runner: how fits run; default: the one `config.isolation` names.
        evaluator: how checkpoints are evaluated; default: `SweepEvaluator(config.evaluation)`.

    Attributes:
        fits_started: fits this object started (resumes included), for reports and tests.
    """

    def __init__(self, config: SweepConfig, runner: FitRunner | None = None, evaluator: SweepEvaluator | None = None):
        self.config = config
        self.out_dir = Path(config.out_dir)
        self.runs = expand(config)
        self.daa_runs = [run for run in self.runs if not isinstance(run, ReferenceRun)]  # what workers share out
        self.runner = runner or RUNNERS[config.isolation]()
        self.evaluator = evaluator or SweepEvaluator(config.evaluation)
        self.fits_started = 0

    def select(self, only: int | None, shard: tuple[int, int] | None = None) -> list[Run]:
        """The runs to process: all, the one `only` names, or shard (k, n): every n-th DAA run from the k-th."""
        if shard is not None:
            k, n = shard
            if not 0 <= k < n:
                raise InputError(f"--shard {k}/{n} must be K/N with 0 <= K < N")
            return self.daa_runs[k::n]
        if only is None:
            return self.runs
        if not 0 <= only < len(self.runs):
            raise InputError(f"--only_run {only} is not a run of this sweep (it has runs 0 to {len(self.runs) - 1})")
        return [self.runs[only]]

    def check_fit_configs(self) -> None:
        """Stop with one sentence when a started run's fit.yaml was resolved from other fit options than the sweep
        gives it now, so that old and new rows never mix in one table silently."""
        for run in self.runs:
            changes = run.stale_fit_config()
            if changes and run.started:
                raise InputError(stale_message(run.run_id, run.root, changes))

    def check_resume_checkpoints(self, runs: list[Run]) -> None:
        """Read the step of every checkpoint a run would resume from, before any run trains: a refused or unreadable
        last.ckpt stops the sweep at the start with one sentence, not after the runs before it."""
        for run in runs:
            if not run.done and run.needs_fit and not run.fit_done and run.resume_args():
                _checkpoint_step(run.root / "checkpoints" / "last.ckpt")

    def execute(
        self,
        only: int | None = None,
        stage: Stage = "all",
        shard: tuple[int, int] | None = None,
        collect: bool = True,
        only_references: bool = False,
    ) -> int:
        """Process the selected runs in order; returns 0 when all of them succeeded, 1 otherwise."""
        runs = self.select(only, shard)
        self.check_fit_configs()
        if only_references:
            runs = [run for run in runs if isinstance(run, ReferenceRun)]
        if stage != "evaluate":
            self.check_resume_checkpoints(runs)
        failed: list[Run] = []
        interrupted = False
        bar = tqdm(runs, desc="sweep", unit="run", dynamic_ncols=True)
        try:
            for run in bar:
                bar.set_postfix_str(run.run_id, refresh=True)
                if not self.process(run, stage):
                    failed.append(run)
                    if not self.config.keep_going:
                        break
        except KeyboardInterrupt:
            interrupted = True  # what finished is kept; the next call resumes the rest
        bar.close()
        if global_rank() == 0 and collect:
            csv_path, _ = self.collect()
            done = sum(run.done for run in self.runs)
            print(f"lit-daa sweep: {done}/{len(self.runs)} runs finished; table: {csv_path} (and .parquet)")
        for run in failed:
            print(f"lit-daa sweep: run {run.index} {run.run_id} failed (see {run.root})")
        if interrupted:
            print("lit-daa sweep: interrupted; run the same command again to resume")
            return 130
        return 1 if failed else 0

    def execute_parallel(self, config_path: str, stage: Stage = "all") -> int:
        """The references here, then the DAA runs in `config.workers` child processes (`--shard k/n` each, one
        thread each), then the table. Each child logs to <out_dir>/workers/<k>.log; the bar counts finished runs."""
        if stage != "evaluate":
            self.check_resume_checkpoints(self.runs)  # here, not only in the workers' logs
        code = self.execute(stage=stage, shard=None, collect=False, only_references=True)
        if code != 0 and not self.config.keep_going:
            return code
        n = self.config.workers
        logs = self.out_dir / "workers"
        logs.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        children = []
        for k in range(n):
            command = [sys.executable, "-m", "lit_daa.cli", "sweep", "--config", config_path, f"--shard={k}/{n}"]
            command += [f"--stage={stage}", "--no_collect"]
            with (logs / f"{k}.log").open("a", encoding="utf-8") as log:
                children.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env))
        daa = self.daa_runs
        bar = tqdm(total=len(daa), desc=f"sweep ({n} workers)", unit="run", dynamic_ncols=True)
        try:
            while any(child.poll() is None for child in children):
                time.sleep(2.0)
                bar.n = sum(run.done for run in daa)
                bar.refresh()
        except KeyboardInterrupt:
            for child in children:
                child.wait()  # Ctrl-C reached them too; each stops and keeps what it finished
        bar.n = sum(run.done for run in daa)
        bar.close()
        csv_path, _ = self.collect()
        print(f"lit-daa sweep: {sum(run.done for run in self.runs)}/{len(self.runs)} runs finished; table: {csv_path}")
        failed = [k for k, child in enumerate(children) if child.returncode != 0]
        for k in failed:
            print(f"lit-daa sweep: worker {k} exited with code {children[k].returncode} (see {logs / f'{k}.log'})")
        return 1 if failed or code != 0 else 0

    def process(self, run: Run, stage: Stage) -> bool:
        """Train (if needed) and evaluate one run; False when it failed or could not start."""
        say = tqdm.write
        if run.done:
            say(f"[{run.index}] {run.run_id}: finished earlier, skipped")
            return True
        if stage != "evaluate" and run.needs_fit and not run.fit_done:
            reason = run.blocked_by()
            if reason is not None:
                say(f"[{run.index}] {run.run_id}: cannot train yet: {reason}")
                return False
            if not self.train(run):
                return False
        if stage == "fit" or global_rank() != 0:  # other ranks of a multi-process fit only train
            return True
        if not run.fit_done:
            if stage != "evaluate" or not run.trained_elsewhere():
                say(f"[{run.index}] {run.run_id}: not trained (no FIT_DONE, no exported policy); nothing to evaluate")
                return False
            run.mark_fit_done()  # `--stage evaluate` after a fit run by hand from --print_commands
        say(f"[{run.index}] {run.run_id}: evaluating")
        run.mark_done(self.evaluator.rows(run.eval_targets()))
        return True

    def train(self, run: Run) -> bool:
        try:
            args = run.fit_args()  # `--config <run>/fit.yaml`, resolved here on the first attempt
        except SystemExit as exit_:  # jsonargparse has printed why the run's fit options do not parse
            tqdm.write(f"[{run.index}] {run.run_id}: its fit options do not parse (exit code {exit_.code}), see above")
            return False
        assert args is not None
        resume = run.resume_args()
        step = _checkpoint_step(run.root / "checkpoints" / "last.ckpt") if resume else None
        note = f"resuming from step {step}" if resume else "training"
        tqdm.write(f"[{run.index}] {run.run_id}: {note}")
        leader = global_rank() == 0  # the other ranks of a multi-process fit train but keep no records
        run.root.mkdir(parents=True, exist_ok=True)
        if leader:
            run.record_attempt(started=time.strftime("%Y-%m-%dT%H:%M:%S"), resume_from_step=step, returncode=None)
        self.fits_started += 1
        log = run.root / "fit.log"
        code = self.runner.fit(args + resume, log)
        if leader:
            run.finish_attempt(returncode=code)
        if code != 0:
            tail = log.read_text(errors="replace").splitlines()[-20:] if log.is_file() else []
            tqdm.write("\n".join([f"[{run.index}] {run.run_id}: fit exited with code {code}", *tail]))
            return False
        if leader:
            run.mark_fit_done()
        return True

    def collect(self) -> tuple[Path, Path]:
        """Rebuild results.csv and results.parquet from the finished runs, in run order."""
        return write_table([row for run in self.runs for row in run.rows()], self.out_dir)

    def commands(self, config_path: str, only: int | None = None) -> str:
        """One `lit-daa fit --config <run>/fit.yaml` command per trained run (resolving its fit.yaml) and one evaluate
        command per run, as shell lines."""
        self.check_fit_configs()
        lines = []
        for run in self.select(only):
            lines.append(f"# run {run.index}: {run.run_id}")
            args = run.fit_args()
            if args is not None:
                lines.append(shlex.join(["lit-daa", "fit", *args]))
            evaluate = ["--config", config_path, "--only_run", str(run.index), "--stage", "evaluate"]
            lines.append(shlex.join(["lit-daa", "sweep", *evaluate]))
        return "\n".join(lines)


def _checkpoint_step(path: Path) -> int:
    """The global step stored in a Lightning checkpoint (memory-mapped: the weights are not read).

    Loaded with `weights_only=True`: a run folder may come from someone else (a shared sweep), and unpickling
    anything but tensors and plain values can run code. A lit-daa checkpoint holds nothing else.

    Raises:
        InputError: the file holds other objects, or is not a readable checkpoint; either way resuming from it
            would fail or be unsafe, so the sweep stops before training anything.
    """
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError:
        raise InputError(
            f"refused to load {path}: it holds objects other than tensors and plain values, which a lit-daa "
            "checkpoint never does and which could run code when unpickled; delete it (or its run folder) to train "
            "that run from the start"
        ) from None
    except (OSError, RuntimeError, EOFError, ValueError) as err:
        raise InputError(
            f"{path} is not a readable checkpoint ({' '.join(str(err).split())[:120]}); delete it to train that run "
            "from the start"
        ) from None
    step = checkpoint.get("global_step") if isinstance(checkpoint, dict) else None
    if not isinstance(step, int):
        raise InputError(f"{path} is not a Lightning checkpoint (no global_step); delete it to train that run again")
    return step
