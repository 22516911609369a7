"""Number formatting and Markdown tables for the analysis report (no dependency on `tabulate`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd


def fmt(value: object, digits: int = 3) -> str:
    """A table cell: floats to `digits` significant digits, inf as "inf", missing as "-", booleans as yes/no."""
    if value is None or value is pd.NA:
        return "-"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isnan(value):
            return "-"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.{digits}g}"
    return str(value)


def pct(fraction: float) -> str:
    """An epoch fraction (or any fraction) as a whole percentage."""
    return "-" if not math.isfinite(fraction) else f"{100.0 * fraction:.0f}%"


def markdown_table(
    df: pd.DataFrame,
    columns: Sequence[str] | None = None,
    headers: Mapping[str, str] | None = None,
    digits: int = 3,
) -> str:
    """A GitHub Markdown table of `columns` of `df` (all by default), renamed through `headers`."""
    columns = list(columns if columns is not None else df.columns)
    headers = dict(headers or {})
    head = [headers.get(col, col) for col in columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(fmt(row[col], digits) for col in columns) + " |")
    if df.empty:
        lines.append("| " + " | ".join("-" for _ in head) + " |")
    return "\n".join(lines)


__all__ = ["fmt", "markdown_table", "pct"]
