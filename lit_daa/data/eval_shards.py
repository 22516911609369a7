"""Validation and test pairs shared out over data-parallel ranks so that every pair is counted exactly once.

Lightning's default `DistributedSampler` pads each rank's share by repeating pairs, which would count those pairs
twice in the validation metrics. Here each rank gets the same number of rows (FSDP needs every rank to run the
same number of forwards: each one gathers parameters collectively), and the rows that only pad a share carry
`valid = False`, which `lit_daa.scoring.ScoredPairs.metric_values` leaves out.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sized
from typing import Any

from torch.utils.data import Dataset, DistributedSampler


class PaddedRows(Dataset):
    """A dataset of `n` rows seen as `padded_length` rows: row i is row i mod n, with `valid` = (i < n)."""

    def __init__(self, rows: Any, padded_length: int) -> None:
        self.rows, self.padded_length = rows, padded_length

    def __len__(self) -> int:
        return self.padded_length

    def __getitem__(self, i: int) -> dict[str, Any]:
        n = len(self.rows)
        return {**self.rows[i % n], "valid": i < n}


class EvalShardSampler(DistributedSampler):
    """Rank r of R gets rows r, r + R, ... of `PaddedRows` (in order; every rank the same count).

    Args:
        dataset: a `PaddedRows` whose length is a multiple of `num_replicas`.
        num_replicas: number of data-parallel ranks.
        rank: this process's rank.
    """

    def __init__(self, dataset: Sized, num_replicas: int = 1, rank: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, len(self.dataset), self.num_replicas))

    def __len__(self) -> int:
        return len(self.dataset) // self.num_replicas


def padded_for_ranks(rows: Sized, num_replicas: int) -> PaddedRows:
    """`rows` padded to the next multiple of `num_replicas`."""
    return PaddedRows(rows, math.ceil(len(rows) / num_replicas) * num_replicas)
