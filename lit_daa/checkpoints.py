"""Intra-epoch checkpoints in Hugging Face format, at fixed fractions of the run's preference pairs.

The paper evaluates four checkpoints inside its single epoch plus the end of the epoch (PAPER.md section 2).
`IntraEpochCheckpoints` saves the policy (and tokenizer) with `save_pretrained` at the optimizer step where the
pairs seen first reach each fraction of the whole run (`trainer.max_epochs` epochs; for the usual one-epoch run,
of one epoch), so every checkpoint loads with `AutoModelForCausalLM.from_pretrained` and can be sampled from
without Lightning. A data-quantity control such as "4 epochs of a quarter of the pairs" thus gets its checkpoints
at the same optimizer steps as "1 epoch of all the pairs".

Layout under `<trainer.default_root_dir>/<dirname>/`::

    examples_00000096/        config.json, model.safetensors, tokenizer files, checkpoint.json
    examples_00000096-adapter/  (LoRA policies only: the adapters alone; the folder above holds merged weights)

`checkpoint.json` holds `step`, `examples_seen`, `epoch_fraction`, `is_final` (and `epoch_pairs`, `epochs`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DistributedSampler

from lit_daa.callbacks import publish_hf_policy, run_dir
from lit_daa.errors import InputError

CHECKPOINT_FILE = "checkpoint.json"


@dataclass(frozen=True)
class CheckpointInfo:
    """Where in training a saved checkpoint is: what `checkpoint.json` holds.

    Args:
        step: optimizer steps taken.
        examples_seen: preference pairs trained on (over all data-parallel ranks and all epochs so far).
        epoch_fraction: examples_seen / (epochs x epoch_pairs): the fraction of the whole run's pairs (the name
            is kept from one-epoch runs, where it is the fraction of the epoch).
        is_final: the checkpoint at the end of the run (the end of its last epoch).
        epoch_pairs: preference pairs in one epoch.
        epochs: epochs the run trains for (`trainer.max_epochs`; 1 in checkpoints written before it was recorded).
    """

    step: int
    examples_seen: int
    epoch_fraction: float
    is_final: bool
    epoch_pairs: int
    epochs: int = 1

    @property
    def folder_name(self) -> str:
        return f"examples_{self.examples_seen:08d}"

    @classmethod
    def read(cls, folder: str | Path) -> CheckpointInfo:
        """Read `checkpoint.json` from a checkpoint folder."""
        return cls(**json.loads((Path(folder) / CHECKPOINT_FILE).read_text()))


@dataclass(frozen=True)
class EpochGeometry:
    """How optimizer steps map to preference pairs over a run of `epochs` epochs.

    Every epoch serves the same pairs in the same number of steps (its last, possibly short, batch included), so
    step s has seen `s // steps_per_epoch` whole epochs plus `s % steps_per_epoch` steps of the next.

    Args:
        epoch_pairs: pairs in one epoch, over all ranks.
        pairs_per_step: pairs one optimizer step consumes (batch pairs x accumulation x data-parallel ranks).
        steps_per_epoch: optimizer steps in one epoch (Lightning steps on the last batch even when accumulation
            is incomplete, hence the ceiling).
        epochs: epochs in the run (`trainer.max_epochs`).
    """

    epoch_pairs: int
    pairs_per_step: int
    steps_per_epoch: int
    epochs: int = 1

    @property
    def total_steps(self) -> int:
        """Optimizer steps in the whole run."""
        return self.steps_per_epoch * self.epochs

    @property
    def run_pairs(self) -> int:
        """Pairs the whole run trains on (repeats across epochs counted)."""
        return self.epoch_pairs * self.epochs

    def examples_at(self, step: int) -> int:
        """Pairs seen after `step` optimizer steps (each epoch's last, possibly short, batch caps it at the epoch)."""
        full, rest = divmod(min(step, self.total_steps), self.steps_per_epoch)
        return full * self.epoch_pairs + min(rest * self.pairs_per_step, self.epoch_pairs)

    def step_for(self, fraction: float) -> int:
        """The first optimizer step at which the pairs seen reach `fraction` of the whole run's pairs."""
        if fraction >= 1.0:
            return self.total_steps
        target = fraction * self.run_pairs
        full = min(int(target // self.epoch_pairs), self.epochs - 1)  # whole epochs before the target
        # The tolerance keeps float products such as 0.2 * 480 = 96.00000000000001 from adding a step.
        within = math.ceil((target - full * self.epoch_pairs) / self.pairs_per_step - 1e-9)
        step = full * self.steps_per_epoch + min(within, self.steps_per_epoch)
        return min(max(step, 1), self.total_steps)

    def info(self, step: int) -> CheckpointInfo:
        seen = self.examples_at(step)
        return CheckpointInfo(
            step=step,
            examples_seen=seen,
            epoch_fraction=seen / self.run_pairs,
            is_final=step >= self.total_steps,
            epoch_pairs=self.epoch_pairs,
            epochs=self.epochs,
        )

    @classmethod
    def from_trainer(cls, trainer: Trainer) -> EpochGeometry:
        """Read the geometry from a Trainer whose train dataloader is set up (from `on_train_start` on).

        The run's epochs are `trainer.max_epochs`; an unbounded run (max_epochs -1, stopped by max_steps or time)
        counts as one epoch, the only span it is known to have. `trainer.max_steps` does not shorten the span, so a
        run cut short by it (and resumed later) keeps the checkpoints of the full run."""
        batches = trainer.num_training_batches
        if not isinstance(batches, int) or batches < 1:  # inf for an iterable without length
            raise InputError("IntraEpochCheckpoints needs a train dataloader with a length (a sized dataset)")
        loader = trainer.train_dataloader
        datamodule = trainer.datamodule
        # The data module's batch_size is per device; a loader's is the same, for a model fed without one.
        batch_pairs = int(getattr(datamodule, "batch_size", None) or loader.batch_size)
        shards = trainer.distributed_sampler_kwargs or {}
        ranks = int(shards.get("num_replicas", trainer.world_size))
        accumulate = trainer.accumulate_grad_batches
        dataset = getattr(datamodule, "train_dataset", None) or getattr(loader, "dataset", None)
        served = batches * batch_pairs * ranks  # what the loop serves; smaller under limit_train_batches
        sampler = getattr(loader, "sampler", None)
        if isinstance(sampler, DistributedSampler):  # the rows the ranks share out (without repeats for ours)
            epoch_pairs = min(sampler.total_size, len(sampler.dataset), served)
        else:
            epoch_pairs = min(len(dataset), served) if dataset is not None else served
        max_epochs = trainer.max_epochs
        return cls(
            epoch_pairs=epoch_pairs,
            pairs_per_step=batch_pairs * accumulate * ranks,
            steps_per_epoch=math.ceil(batches / accumulate),
            epochs=max_epochs if isinstance(max_epochs, int) and max_epochs >= 1 else 1,
        )


class IntraEpochCheckpoints(Callback):
    """Save the policy in Hugging Face format at fractions of the run (see the module docstring).

    A checkpoint is saved at the first optimizer step where pairs seen (global_step x batch pairs x gradient
    accumulation x data-parallel ranks, each epoch's short last batch counted as it is) reach `fraction` x pairs
    of the whole run (`trainer.max_epochs` x pairs in one epoch); 1.0 is the run's last step.
    Fractions that land on the same step give one checkpoint. Everything is computed from `global_step`, so a
    run resumed with `--ckpt_path` saves the checkpoints it has not saved yet and leaves existing folders alone.
    A folder appears only complete (written aside, then renamed), so a run killed while saving leaves none.
    A LoRA policy is saved merged (as `ExportPolicy` does), its adapters beside it in `<folder>-adapter`.
    Every rank takes part in saving (a sharded policy is gathered to rank 0, see `lit_daa.export`); rank 0 writes.

    Args:
        fractions: fractions of the run's pairs, each in (0, 1]. Default: four inside the run and its end, as in
            the paper (whose runs are one epoch).
        dirname: folder under the Trainer's default_root_dir.
    """

    def __init__(self, fractions: Sequence[float] = (0.2, 0.4, 0.6, 0.8, 1.0), dirname: str = "intra_epoch") -> None:
        bad = [f for f in fractions if not 0.0 < f <= 1.0]
        if bad or not fractions:
            raise InputError(f"IntraEpochCheckpoints fractions must be non-empty and in (0, 1], got {list(fractions)}")
        self.fractions = sorted(set(float(f) for f in fractions))
        self.dirname = dirname
        self.geometry: EpochGeometry | None = None
        self.targets: dict[int, CheckpointInfo] = {}  # optimizer step -> what to save there
        self.saved: list[Path] = []  # folders this process wrote

    def folder(self, trainer: Trainer) -> Path:
        return run_dir(trainer) / self.dirname

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.geometry = EpochGeometry.from_trainer(trainer)
        steps = sorted({self.geometry.step_for(f) for f in self.fractions})
        self.targets = {step: self.geometry.info(step) for step in steps}
        missed = [
            info.folder_name
            for step, info in self.targets.items()
            if step < trainer.global_step and not (self.folder(trainer) / info.folder_name).is_dir()
        ]
        if missed:
            rank_zero_warn(
                f"resuming at step {trainer.global_step}, past intra-epoch checkpoints that were never saved "
                f"({', '.join(missed)}); they cannot be recreated from this checkpoint"
            )

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        # Called after every micro-batch; global_step has already counted this batch's optimizer step, if any.
        info = self.targets.get(trainer.global_step)
        if info is None:
            return
        target = self.folder(trainer) / info.folder_name
        # Every rank must agree (gathering a sharded policy is collective); rank 0's file system decides.
        if trainer.strategy.broadcast(target.is_dir()):  # saved earlier in this run, or before the resume
            return
        self._save(trainer, pl_module, target, info)
        if trainer.is_global_zero:
            self.saved.append(target)

    def _save(self, trainer: Trainer, pl_module: LightningModule, target: Path, info: CheckpointInfo) -> None:
        # plain, LoRA (merged + adapters), QLoRA and sharded policies, each folder whole or not at all
        publish_hf_policy(trainer, pl_module, target, {CHECKPOINT_FILE: json.dumps(asdict(info), indent=2) + "\n"})


def list_checkpoints(folder: str | Path) -> list[tuple[Path, CheckpointInfo]]:
    """The complete intra-epoch checkpoints under `folder` (an `IntraEpochCheckpoints` dirname), by step."""
    found = []
    for path in sorted(Path(folder).glob("examples_*")):
        if path.is_dir() and (path / CHECKPOINT_FILE).is_file():
            found.append((path, CheckpointInfo.read(path)))
    return sorted(found, key=lambda item: item[1].step)
