"""The headline checks, measured from the data: where the best win rate sits on the KL axis and how far the
highest-KL checkpoints fall below it (PAPER.md section 5, findings 1 and 2).

Definitions (also stated in the report):

- The points of a group (an objective, or an (objective, size) cell) are all its checkpoints, intra-epoch and
  end-of-epoch, plus, by default, the SFT point of each size in it at d = sqrt(KL) = 0.
- The peak is the point with the highest win rate (ties: the lowest KL). It is *interior* when its d is strictly
  between the lowest and the highest d of the group: the win rate rose and then fell.
- The over-optimisation drop is the peak win rate minus the mean win rate of the k highest-KL checkpoints of the
  group (k = 3 by default), in win-rate points (percent); the single highest-KL checkpoint is reported too.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from lit_daa.analysis.results import REFERENCE_OBJECTIVE, Results

DEFAULT_TOP_K = 3


def _group_points(results: Results, policy_group: pd.DataFrame, include_sft: bool) -> pd.DataFrame:
    """A group's checkpoints, plus the SFT rows of its sizes when asked."""
    if not include_sft or results.reference.empty:
        return policy_group
    ref = results.reference[results.reference["model"].isin(policy_group["model"].unique())]
    return pd.concat([policy_group, ref], ignore_index=True)


def peak_position(points: pd.DataFrame, top_k: int = DEFAULT_TOP_K) -> dict[str, object]:
    """The peak, its interior-ness and the drop to the highest-KL checkpoints of one group of points.

    `points` has sqrt_kl, win_rate, objective, model, beta, epoch_fraction and run_id; rows whose objective is
    the reference's count as points for the peak and the KL range but never as high-KL checkpoints.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    ordered = points.sort_values("sqrt_kl", kind="stable").reset_index(drop=True)
    best = ordered.loc[ordered["win_rate"].idxmax()]  # first of the maxima: the lowest-KL one on a tie
    lo, hi = float(ordered["sqrt_kl"].min()), float(ordered["sqrt_kl"].max())
    checkpoints = ordered[ordered["objective"] != REFERENCE_OBJECTIVE]
    # Highest KL first; among equal KL the later (larger) index, so the choice is deterministic.
    top = checkpoints.iloc[::-1].sort_values("sqrt_kl", ascending=False, kind="stable").head(top_k)
    highest = top.iloc[0]
    peak = float(best["win_rate"])
    return {
        "points": len(ordered),
        "best_win_rate": peak,
        "best_sqrt_kl": float(best["sqrt_kl"]),
        "best_is_sft": bool(best["objective"] == REFERENCE_OBJECTIVE),
        "best_model": best["model"],
        "best_beta": float(best["beta"]),
        "best_epoch_fraction": float(best["epoch_fraction"]),
        "best_run_id": best["run_id"],
        "min_sqrt_kl": lo,
        "max_sqrt_kl": hi,
        "interior": bool(lo < float(best["sqrt_kl"]) < hi),
        "top_k": len(top),
        "top_k_mean_win_rate": float(top["win_rate"].mean()),
        "top_k_drop_pp": 100.0 * (peak - float(top["win_rate"].mean())),
        "highest_sqrt_kl": float(highest["sqrt_kl"]),
        "highest_win_rate": float(highest["win_rate"]),
        "highest_model": highest["model"],
        "highest_beta": float(highest["beta"]),
        "highest_drop_pp": 100.0 * (peak - float(highest["win_rate"])),
    }


def peak_positions(
    results: Results,
    by: Sequence[str] = ("objective",),
    top_k: int = DEFAULT_TOP_K,
    include_sft: bool = True,
) -> pd.DataFrame:
    """`peak_position` for every group of the policy rows by the `by` columns (objective, or objective and model)."""
    rows = []
    for key, group in results.policy.groupby(list(by), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        points = _group_points(results, group, include_sft)
        rows.append({**dict(zip(by, key, strict=True)), **peak_position(points, top_k)})
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    # Sizes sort smallest first, not by name: rank the model column where it is a group column.
    rank = {m: i for i, m in enumerate(results.models)}
    keys = {col: table[col].map(rank) if col == "model" else table[col] for col in by}
    order = pd.DataFrame(keys).sort_values(list(by), kind="stable").index
    return table.loc[order].reset_index(drop=True)


def count_true(flags: pd.Series) -> tuple[int, int]:
    """(how many True, how many decided) of a boolean column that may hold NaN for undecided rows."""
    decided = flags.dropna().astype(bool)
    return int(decided.sum()), len(decided)


__all__ = ["DEFAULT_TOP_K", "count_true", "peak_position", "peak_positions"]
