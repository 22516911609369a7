"""A train loader that shuffles by (seed, epoch) and can resume in the middle of an epoch, batch-exact.

Order: epoch e visits the rows in a permutation drawn from a generator seeded by a hash of (seed, e), never the
global RNG, so the order does not depend on what else consumed random numbers (model init, dropout, workers).

Position: the loader counts the batches it has handed out in the current epoch. Lightning 2.6 stores
`state_dict()` of any train loader that has one in every checkpoint and calls `load_state_dict()` on resume
before the first batch is requested (`FitLoop.on_save_checkpoint` / `_load_combined_loader_states`); the next
iteration then skips exactly the batches already trained on and goes on with the same permutation.

Which batches count as trained on: the saved count must be the batches *trained on*, not the batches fetched.
Lightning's `_PrefetchDataFetcher` fetches one batch ahead only when the loader has no length (it needs the
look-ahead to know which batch is the last). This loader has `__len__`, so Lightning fetches batch k+1 only after
batch k's `training_step` and `on_train_batch_end`; when ModelCheckpoint saves in `on_train_batch_end` after batch
k (0-based) the loader has handed out exactly k+1 batches, all trained on, and k+1 is what it saves. (Were a
future Lightning to prefetch a sized loader, the saved count would be one too high and a resume would skip a
batch; `tests/test_data_resumable.py::test_lightning_checkpoint_saves_trained_batch_count` checks this.)
Batches that DataLoader workers have prepared but not handed out are never counted: the count is taken where
batches leave the loader.

Epochs: the epoch advances when a new iteration begins after another one began, so a plain
`for epoch ...: for batch in loader` loop gets a fresh permutation each epoch. Lightning also calls
`sampler.set_epoch(e)` before each epoch (`_set_sampler_epoch`); that sets the epoch explicitly and wins. After
`load_state_dict`, the next iteration continues the saved epoch at the saved batch (or starts the next epoch
when the saved one was complete).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence, Sized
from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler

from lit_daa.errors import InputError


def epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit generator seed from (seed, epoch); hashed so that (seed, epoch + 1) and (seed + 1, epoch) differ."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{epoch}".encode()).digest()[:8], "little") >> 1


class ResumableSampler(DistributedSampler):
    """This rank's share of a (seed, epoch) permutation of the rows, with the loader's position in the epoch.

    It subclasses `DistributedSampler` (and does the rank sharding itself) so that Lightning's automatic sampler
    injection leaves it in place under DDP/FSDP. Driven by `ResumableDataLoader`.

    Ranks never see a pair twice in one epoch: with R ranks the last n mod R rows of each epoch's permutation
    are left out (a different few each epoch) rather than padded with repeats, so that every rank takes the same
    number of steps and no pair weighs twice in the gradient or the metrics.

    Args:
        dataset: the rows (only its length is used).
        batch_size: rows per batch on this rank; a position is counted in batches.
        seed: base seed of the per-epoch permutations.
        shuffle: permute the rows (False: row order, for checks).
        num_replicas: number of data-parallel ranks.
        rank: this process's rank.
        lengths: tokens of each row; with `bucket_batches` > 1, rows of similar length share batches.
        bucket_batches: length bucketing: the epoch's permutation is cut into groups of this many (global) batches,
            each group is sorted by length and cut into batches, and the batches are shuffled within the group.
            The order is still a function of (seed, epoch) alone, so resuming mid-epoch stays exact. 0 or 1: off.
    """

    def __init__(
        self,
        dataset: Sized,
        batch_size: int,
        seed: int = 0,
        shuffle: bool = True,
        num_replicas: int = 1,
        rank: int = 0,
        lengths: Sequence[int] | None = None,
        bucket_batches: int = 0,
    ) -> None:
        if len(dataset) < num_replicas:
            raise InputError(
                f"the training data has {len(dataset)} pairs, fewer than the {num_replicas} data-parallel ranks"
            )
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=True)
        self.batch_size = batch_size
        if bucket_batches > 1 and (lengths is None or len(lengths) != len(dataset)):
            raise ValueError("length bucketing needs one length per row")
        self.lengths, self.bucket_batches = lengths, bucket_batches
        self.batches_done = 0  # batches of `self.epoch` handed out by the loader
        self._continue = True  # the next iteration continues `self.epoch`; False: it starts the next epoch
        self._skip = 0  # rows of this rank the running iteration skipped at its start
        self._iteration = 0  # counts iterations, so a stale iterator cannot move the position

    @property
    def batches_per_epoch(self) -> int:
        return math.ceil(self.num_samples / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration epoch `epoch`: from its start, unless it is the epoch under way (a resume)."""
        if epoch != self.epoch or self.batches_done >= self.batches_per_epoch:
            self.batches_done = 0
        self.epoch = epoch
        self._continue = True

    def begin_iteration(self) -> int:
        """Fix the epoch and the batches to skip for an iteration starting now; returns the iteration's token."""
        if not self._continue or self.batches_done >= self.batches_per_epoch:
            # A new pass without `set_epoch`, or a restored position at the end of an epoch: the next epoch.
            self.epoch, self.batches_done = self.epoch + 1, 0
        self._continue = False
        self._skip = self.batches_done * self.batch_size
        self._iteration += 1
        return self._iteration

    def count_batch(self, token: int) -> None:
        """Record that the iteration `token` handed out one more batch."""
        if token == self._iteration:
            self.batches_done += 1

    def epoch_indices(self, epoch: int) -> list[int]:
        """This rank's rows for `epoch`, in order, before any resume skip."""
        n = len(self.dataset)
        if self.shuffle:
            generator = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
            order = torch.randperm(n, generator=generator).tolist()
        else:
            order = list(range(n))
        # total_size = (n // ranks) * ranks: the permutation's tail beyond it is this epoch's left-out rows
        order = order[: self.total_size]
        if self.bucket_batches > 1:
            order = self._bucketed(order, epoch)
        return order[self.rank : self.total_size : self.num_replicas]

    def _bucketed(self, order: list[int], epoch: int) -> list[int]:
        """`order` regrouped so that each global batch holds rows of similar length (see `bucket_batches`)."""
        assert self.lengths is not None
        step = self.batch_size * self.num_replicas  # one global batch: every rank's share of one step
        group = step * self.bucket_batches
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, epoch) ^ 0x5BD1E995)
        out: list[int] = []
        for start in range(0, len(order), group):
            rows = sorted(order[start : start + group], key=lambda i: (self.lengths[i], i))
            batches = [rows[k : k + step] for k in range(0, len(rows), step)]
            for b in torch.randperm(len(batches), generator=generator).tolist():
                out += batches[b]
        return out

    def __iter__(self) -> Iterator[int]:
        return iter(self.epoch_indices(self.epoch)[self._skip :])

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "batches_done": self.batches_done,
            "batch_size": self.batch_size,
            "num_samples": self.num_samples,
            "num_replicas": self.num_replicas,
            "seed": self.seed,
            "bucket_batches": self.bucket_batches,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        keys = ("batch_size", "num_samples", "num_replicas", "seed", "bucket_batches")
        saved = {k: state.get(k, 0) for k in keys}
        now = {k: getattr(self, k) for k in keys}
        mid_epoch = 0 < state["batches_done"] < math.ceil(state["num_samples"] / state["batch_size"])
        if saved != now and mid_epoch:
            # Another batch size, data size, device count or seed gives another order: the saved position would
            # point into a different sequence of batches, and the resumed run would not be the interrupted one.
            raise InputError(
                f"the checkpoint's train loader stopped mid-epoch with {_describe(saved)}, but this run has "
                f"{_describe(now)}; resume with the same data, data.batch_size, data.seed, data.bucket_batches "
                "and devices"
            )
        self.epoch, self.batches_done, self._continue = int(state["epoch"]), int(state["batches_done"]), True


def _describe(values: dict[str, Any]) -> str:
    buckets = f" (length buckets of {values['bucket_batches']} batches)" if values["bucket_batches"] > 1 else ""
    return (
        f"{values['num_samples']} rows per device on {values['num_replicas']} device(s), "
        f"batch size {values['batch_size']} and seed {values['seed']}{buckets}"
    )


class ResumableDataLoader(DataLoader):
    """A DataLoader over a `ResumableSampler` that counts the batches it hands out and saves/restores that position.

    `len()` is always the full epoch's number of batches (what Lightning's progress tracking expects); a resumed
    epoch yields only the batches not yet trained on. Takes DataLoader's arguments; `sampler` should be a
    `ResumableSampler` (any other sampler, e.g. one Lightning substitutes for `overfit_batches`, gives a plain
    DataLoader with an empty state).
    """

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        # A generator: nothing happens until the first batch is requested, so an `iter()` that is never
        # iterated (Lightning creates the epoch's iterator before `set_epoch`) neither fixes the epoch nor moves it.
        return self._batches()

    def _batches(self) -> Iterator[Any]:
        sampler = self.sampler
        if not isinstance(sampler, ResumableSampler):
            yield from super().__iter__()
            return
        token = sampler.begin_iteration()
        for batch in super().__iter__():
            sampler.count_batch(token)  # counted when handed out: the consumer holds it from here on
            yield batch

    def state_dict(self) -> dict[str, Any]:
        return self.sampler.state_dict() if isinstance(self.sampler, ResumableSampler) else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if isinstance(self.sampler, ResumableSampler) and state:
            self.sampler.load_state_dict(state)


def reopen_unfinished_epoch(checkpoint: dict[str, Any]) -> bool:
    """Let a run that stopped mid-epoch at `max_steps` be resumed with a larger `max_steps`; True if changed.

    Lightning counts the epoch as completed when `max_steps` ends it early, so a resume with more steps would stop
    at once (`max_epochs` reached). When the checkpoint's train loader stopped mid-epoch, the epoch is marked as
    not completed instead, and training continues at the loader's next batch: the order an uninterrupted longer
    run would have seen.
    """
    loops = checkpoint.get("loops", {}).get("fit_loop", {})
    loaders = loops.get("state_dict", {}).get("combined_loader") or []
    progress = loops.get("epoch_progress")
    if len(loaders) != 1 or not loaders[0] or progress is None:
        return False
    state = loaders[0]
    per_epoch = math.ceil(state["num_samples"] / state["batch_size"])
    epoch = int(state["epoch"])
    if not 0 < state["batches_done"] < per_epoch or progress["current"]["completed"] != epoch + 1:
        return False
    for scope in ("current", "total"):
        progress[scope]["completed"] = progress[scope]["processed"] = epoch
    return True
