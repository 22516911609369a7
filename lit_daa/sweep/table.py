"""The sweep's results table (docs/results_schema.md): one row per evaluated checkpoint, as CSV and Parquet.

Rows are kept as JSON files while a sweep runs (one per evaluated checkpoint, and all of a run's rows in its DONE
marker); the table is rebuilt from the finished runs after each one, written aside and renamed into place, so a
reader never sees a half-written file and a rerun never appends duplicates.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from lit_daa.results_schema import COLUMNS, FLOAT_COLUMNS, REFERENCE_OBJECTIVE, SCHEMA

__all__ = ["COLUMNS", "REFERENCE_OBJECTIVE", "read_rows", "write_json", "write_table"]


def write_json(path: Path, value: Any) -> None:
    """Write JSON atomically (aside, then renamed); NaN becomes null so the file is strict JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(json.dumps(_nan_to_none(value), indent=2) + "\n", encoding="utf-8")
    os.replace(staging, path)


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows from a JSON file holding one row or a list of rows; null floats come back as NaN."""
    value = json.loads(path.read_text(encoding="utf-8"))
    rows = value if isinstance(value, list) else [value]
    return [_none_to_nan(row) for row in rows]


def write_table(rows: list[dict[str, Any]], out_dir: Path) -> tuple[Path, Path]:
    """Write results.csv and results.parquet into `out_dir`; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, parquet_path = out_dir / "results.csv", out_dir / "results.parquet"
    staging = csv_path.with_name(".results.csv.tmp")
    with staging.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(staging, csv_path)
    columns = {name: [row.get(name) for row in rows] for name in COLUMNS}
    table = pa.table(columns, schema=pa.schema(list(SCHEMA.items())))
    staging = parquet_path.with_name(".results.parquet.tmp")
    pq.write_table(table, staging)
    os.replace(staging, parquet_path)
    return csv_path, parquet_path


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return value


def _none_to_nan(row: dict[str, Any]) -> dict[str, Any]:
    return {k: math.nan if v is None and k in FLOAT_COLUMNS else v for k, v in row.items()}
