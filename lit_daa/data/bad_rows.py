"""Bad rows: the row-level problem a schema or the tokenizer finds, and what happens to rows that have one.

A problem found while converting or tokenizing a row is recorded in the row's `problem` column (empty when the
row is fine) instead of being raised at once, so that one pass over the data counts every bad row. Afterwards
`settle_bad_rows` either raises one `InputError` naming the first bad row, or drops the bad rows when the user
asked for that (`skip_bad_rows`) and reports how many were dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow.compute as pc
from datasets import Dataset

from lit_daa.errors import InputError


class BadRow(Exception):
    """A row that cannot be used, with the field at fault; str() gives "field 'chosen': empty response"."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"field '{field}': {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class SplitReport:
    """What happened to one split of a source.

    Args:
        source: what messages call the split (a file path, or a hub dataset and split).
        rows: rows read from the source.
        bad: rows with a problem (missing field, wrong type, empty or identical responses, prompt too long).
        skipped: bad rows dropped because `skip_bad_rows` was set (otherwise loading stops at the first bad row).
        truncated: kept rows whose prompt or responses were cut to fit the length limits.
    """

    source: str
    rows: int
    bad: int
    skipped: int
    truncated: int

    @property
    def kept(self) -> int:
        return self.rows - self.skipped

    def summary(self) -> str:
        """One line for the log, e.g. "train.jsonl: 100 rows, skipped 3 bad rows, truncated 5 rows"."""
        return (
            f"{self.source}: {_rows(self.rows)}, skipped {_rows(self.skipped, 'bad ')}, "
            f"truncated {_rows(self.truncated)}"
        )


def _rows(n: int, kind: str = "") -> str:
    return f"{n} {kind}row" + ("" if n == 1 else "s")


def settle_bad_rows(
    encoded: Dataset, source: str, row_label: Callable[[int], str], skip_bad_rows: bool
) -> tuple[Dataset, SplitReport]:
    """Raise on bad rows, or drop them when `skip_bad_rows`; return the clean rows and the split's report.

    Args:
        encoded: the output of `encode_pairs`, with columns `index`, `problem` and `truncated`.
        source: what the message calls the split, e.g. "data/train.jsonl".
        row_label: maps a source row index (0-based) to how the message names it, e.g. 16 -> "line 17".
        skip_bad_rows: drop bad rows instead of raising.

    The returned dataset lacks the `problem` column.
    """
    if len(encoded) == 0:
        raise InputError(f"{source} has no rows")
    # Read the two small columns through Arrow: no Python object per row.
    arrow = encoded.with_format("arrow")
    bad_mask = pc.not_equal(arrow["problem"], "").to_numpy(zero_copy_only=False)
    truncated_mask = arrow["truncated"].to_numpy(zero_copy_only=False)
    bad = int(bad_mask.sum())
    if bad:
        first = int(np.flatnonzero(bad_mask)[0])
        where = f"{source} {row_label(int(arrow['index'][first].as_py()))}, {arrow['problem'][first].as_py()}"
        if bad == len(encoded):
            raise InputError(f"{where} (and every one of its {_rows(bad)} is bad, so none is left to train on)")
        if not skip_bad_rows:
            raise InputError(
                f"{where} (use --data.skip_bad_rows true to skip such rows; {_rows(bad)} {'is' if bad == 1 else 'are'}"
                " bad)"
            )
        encoded = encoded.select(np.flatnonzero(~bad_mask))
    report = SplitReport(
        source=source,
        rows=len(bad_mask),
        bad=bad,
        skipped=bad,
        truncated=int((truncated_mask & ~bad_mask).sum()),
    )
    return encoded.remove_columns("problem"), report
