"""Evaluation prompts with a reference ("human") response each: from a JSONL/CSV file or the synthetic world.

A file has one row per prompt with string columns `prompt` and `reference`; other columns are ignored.
"""

from __future__ import annotations

import csv
import json
import random
from abc import ABC, abstractmethod
from pathlib import Path

from lit_daa.errors import InputError
from lit_daa.synthetic.world import SyntheticWorld

COLUMNS = ("prompt", "reference")


def eval_set(world: SyntheticWorld, n: int, seed: int) -> list[dict[str, str]]:
    """n rows {"prompt", "reference"} from the synthetic world, reproducible by seed.

    The reference is the world's "human" answer (`world.human_response(prompt, rng)`) when the world has one, else
    an ordinary random response (`world.response`).
    """
    rng = random.Random(seed)
    human = getattr(world, "human_response", None) or world.response
    rows = []
    for _ in range(n):
        prompt = world.prompt(rng)
        rows.append({"prompt": prompt, "reference": human(prompt, rng)})
    return rows


class RowReader(ABC):
    """Reads a file into (row label, row dict) pairs; one subclass per file format."""

    @abstractmethod
    def rows(self, path: Path) -> list[tuple[str, object]]:
        """(label for messages, raw row) per row."""


class JsonlReader(RowReader):
    def rows(self, path: Path) -> list[tuple[str, object]]:
        out = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                out.append((f"line {number}", json.loads(line)))
            except json.JSONDecodeError as err:
                raise InputError(f"{path} line {number} is not valid JSON ({err.msg})") from None
        return out


class CsvReader(RowReader):
    def rows(self, path: Path) -> list[tuple[str, object]]:
        with path.open(newline="", encoding="utf-8") as f:
            # the header is line 1, so data row i is line i + 1
            return [(f"line {i}", row) for i, row in enumerate(csv.DictReader(f), start=2)]


READERS: dict[str, RowReader] = {".jsonl": JsonlReader(), ".csv": CsvReader()}


def read_eval_file(path: str | Path) -> list[dict[str, str]]:
    """Rows {"prompt", "reference"} of a .jsonl or .csv file; a missing file, column or bad value is an InputError."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"evaluation prompts file '{path}' does not exist")
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise InputError(f"evaluation prompts file '{path}' must end in one of {sorted(READERS)}")
    rows = []
    for label, raw in reader.rows(path):
        if not isinstance(raw, dict):
            raise InputError(f"{path} {label} is not an object with fields {', '.join(COLUMNS)}")
        row = {}
        for column in COLUMNS:
            value = raw.get(column)
            if not isinstance(value, str) or not value.strip():
                problem = "is missing" if value is None else "is not a non-empty string"
                raise InputError(f"{path} {label}, field '{column}' {problem}")
            row[column] = value
        rows.append(row)
    if not rows:
        raise InputError(f"evaluation prompts file '{path}' has no rows")
    return rows
