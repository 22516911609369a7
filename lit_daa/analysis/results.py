"""Reading the sweep's results table (docs/results_schema.md) into the shape the analyses need.

One row per evaluated checkpoint. Rows whose objective is `REFERENCE_OBJECTIVE` ("SFT") are the reference model of
each size: their win rate is the d = sqrt(KL) = 0 point of every curve of that size and the R0 of the `gain` offset.
Everything else is a checkpoint of a trained run (the "policy" rows).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lit_daa.errors import InputError
from lit_daa.results_schema import NUMERIC_COLUMNS, REFERENCE_OBJECTIVE, REQUIRED_COLUMNS

READERS: dict[str, Callable[[Path], pd.DataFrame]] = {
    ".csv": pd.read_csv,
    ".parquet": pd.read_parquet,
    ".pq": pd.read_parquet,
}
_TRUE_STRINGS = frozenset({"true", "1", "yes", "y", "t"})


@dataclass(frozen=True)
class Results:
    """A results table split into trained-run checkpoints and reference rows.

    Attributes:
        policy: checkpoints of the main grid's trained runs (empty `variant`), sorted by objective, model, beta, seed,
            epoch fraction.
        reference: the SFT rows (one per model after averaging repeats), with sqrt_kl set to 0.
        sft_win_rate: model name -> SFT win rate, for the models that have a reference row.
        models: model names, smallest first (by `params` when present, else by name).
        objectives: objective names of the trained runs, sorted.
        source: the file the table came from (None when built in memory).
        notes: what was dropped, coerced or is missing, for the report.
        variants: checkpoints of controls and ablations (non-empty `variant`), sorted like `policy`; the main
            analyses leave them out and the findings compare them with the main grid.
        sft_by_seed: model name -> SFT win rate by seed (one entry when the sweep shares one SFT model across
            seeds; one per seed when each seed trained its own).
    """

    policy: pd.DataFrame
    reference: pd.DataFrame
    sft_win_rate: dict[str, float]
    models: list[str]
    objectives: list[str]
    source: Path | None = None
    notes: list[str] = field(default_factory=list)
    variants: pd.DataFrame = field(default_factory=pd.DataFrame)
    sft_by_seed: dict[str, pd.Series] = field(default_factory=dict)

    def has(self, *columns: str) -> bool:
        """Whether the policy rows carry every one of `columns` with at least one finite value each."""
        return all(col in self.policy.columns and self.policy[col].notna().any() for col in columns)


def resolve_results_path(path: str | Path) -> Path:
    """The results file for `path`: the file itself, or results.parquet / results.csv inside a folder."""
    path = Path(path)
    if path.is_dir():
        for name in ("results.parquet", "results.csv"):
            if (path / name).is_file():
                return path / name
        raise InputError(f"{path} is a folder without results.parquet or results.csv")
    if not path.is_file():
        raise InputError(f"results file {path} does not exist")
    return path


def read_results(path: str | Path) -> pd.DataFrame:
    """The raw table from a .csv or .parquet file (or a folder holding one)."""
    path = resolve_results_path(path)
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise InputError(f"results file {path} must end in one of {sorted(READERS)}")
    try:
        return reader(path)
    except (OSError, ValueError, ImportError) as err:
        raise InputError(f"cannot read results file {path}: {err}") from err


def _as_bool(column: pd.Series) -> pd.Series:
    """is_final as real booleans: CSV round trips can turn it into strings or 0/1."""
    if pd.api.types.is_bool_dtype(column):
        return column.fillna(False).astype(bool)
    if pd.api.types.is_numeric_dtype(column):
        return column.fillna(0).astype(float) != 0
    return column.astype(str).str.strip().str.lower().isin(_TRUE_STRINGS)


def prepare_results(df: pd.DataFrame, source: Path | None = None) -> Results:
    """Validate and split a results table; see `Results`.

    Raises:
        InputError: a required column is missing, there is no KL column, or there are no trained-run rows.
    """
    missing = [col for col in REQUIRED_COLUMNS if col not in df.columns]
    if missing:
        raise InputError(f"results table {source or ''} has no column(s) {missing} (see docs/results_schema.md)")
    if "sqrt_kl" not in df.columns and "kl" not in df.columns:
        raise InputError(f"results table {source or ''} has neither a sqrt_kl nor a kl column")
    df = df.copy()
    notes: list[str] = []
    for col in NUMERIC_COLUMNS:
        if col in df.columns:
            df[col] = pd.to_numeric(df[col], errors="coerce")
    for col in ("run_id", "objective", "model"):
        df[col] = df[col].astype(str)
    # a CSV round trip turns the main grid's empty variant into NaN; tables from before variants have none
    df["variant"] = df["variant"].fillna("").astype(str) if "variant" in df.columns else ""
    df["seed"] = pd.to_numeric(df["seed"], errors="coerce").fillna(0).astype(int) if "seed" in df.columns else 0
    df["is_final"] = _as_bool(df["is_final"])
    # sqrt_kl is derived data; recompute it where a writer left it out, with the schema's clip at 0.
    derived = np.sqrt(df["kl"].clip(lower=0)) if "kl" in df.columns else pd.Series(np.nan, index=df.index)
    df["sqrt_kl"] = df["sqrt_kl"].fillna(derived) if "sqrt_kl" in df.columns else derived
    if "kl" not in df.columns:
        df["kl"] = df["sqrt_kl"] ** 2

    is_ref = df["objective"] == REFERENCE_OBJECTIVE
    policy, reference = df[~is_ref].copy(), df[is_ref].copy()
    if policy.empty:
        raise InputError(f"results table {source or ''} has no trained-run rows (only {REFERENCE_OBJECTIVE})")
    unusable = policy["win_rate"].isna() | policy["sqrt_kl"].isna()
    if unusable.any():
        notes.append(f"{int(unusable.sum())} checkpoint row(s) without a win rate or KL are left out of every analysis")
        policy = policy[~unusable]
    if policy.empty:
        raise InputError(f"results table {source or ''} has no checkpoint with both a win rate and a KL")
    sort_cols = [c for c in ("objective", "model", "beta", "seed", "epoch_fraction", "step") if c in policy.columns]
    policy = policy.sort_values(sort_cols, kind="stable").reset_index(drop=True)
    variants = policy[policy["variant"] != ""].reset_index(drop=True)
    policy = policy[policy["variant"] == ""].reset_index(drop=True)
    if policy.empty:
        raise InputError(f"results table {source or ''} has only control or ablation rows, no main-grid rows")

    reference = reference[reference["win_rate"].notna()]
    sft_by_seed = {
        str(m): g.groupby("seed")["win_rate"].mean().astype(float) for m, g in reference.groupby("model", sort=False)
    }
    repeats = reference["model"].duplicated(keep=False)
    if repeats.any() and reference.groupby("model")["seed"].nunique().max() == 1:
        notes.append(f"{int(repeats.sum())} {REFERENCE_OBJECTIVE} rows share a model; their win rates are averaged")
    reference = reference.groupby("model", sort=False, as_index=False).agg(
        {col: "mean" if col in NUMERIC_COLUMNS else "first" for col in reference.columns if col != "model"}
    )
    reference["sqrt_kl"] = 0.0  # the reference against itself: the d = 0 point by definition
    reference["is_final"] = True
    sft_win_rate = {str(m): float(r) for m, r in zip(reference["model"], reference["win_rate"], strict=True)}

    models = _model_order(pd.concat([policy, reference], ignore_index=True))
    without_sft = [m for m in models if m not in sft_win_rate and m in set(policy["model"])]
    if without_sft:
        notes.append(f"no {REFERENCE_OBJECTIVE} row for model(s) {without_sft}: no d = 0 point and no gain fit there")
    objectives = sorted(policy["objective"].unique())
    return Results(
        policy=policy,
        reference=reference.reset_index(drop=True),
        sft_win_rate=sft_win_rate,
        models=models,
        objectives=objectives,
        source=source,
        notes=notes,
        variants=variants,
        sft_by_seed=sft_by_seed,
    )


def _model_order(df: pd.DataFrame) -> list[str]:
    """Model names, smallest first: by median params where known, unknown sizes last, then by name."""
    names = sorted(df["model"].unique())
    if "params" not in df.columns:
        return names
    size = df.groupby("model")["params"].median().to_dict()

    def key(model: str) -> tuple[bool, float, str]:
        params = float(size.get(model, np.nan))
        known = bool(np.isfinite(params))
        return (not known, params if known else 0.0, model)

    return sorted(names, key=key)


def load_results(path: str | Path) -> Results:
    """Read and prepare a results table from a .csv or .parquet file (or a folder holding results.*)."""
    resolved = resolve_results_path(path)
    return prepare_results(read_results(resolved), source=resolved)


__all__ = [
    "NUMERIC_COLUMNS",
    "READERS",
    "REFERENCE_OBJECTIVE",
    "REQUIRED_COLUMNS",
    "Results",
    "load_results",
    "prepare_results",
    "read_results",
    "resolve_results_path",
]
