"""Intra-epoch dynamics (PAPER.md Fig. 2): where inside the epoch each run's best win rate sits.

The paper's observation is that at wide KL budgets (small DAA beta) the best checkpoint comes early, about a
quarter into the single epoch, and later checkpoints have more KL and a lower win rate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

RUN = ("objective", "model", "beta", "run_id")


def _end_row(run: pd.DataFrame) -> pd.Series:
    """The end-of-epoch checkpoint: the (last) is_final row, else the latest checkpoint of an unfinished run."""
    final = run[run["is_final"]]
    return final.iloc[-1] if not final.empty else run.iloc[-1]


def run_peaks(policy: pd.DataFrame) -> pd.DataFrame:
    """One row per run: its best checkpoint against its end-of-epoch checkpoint.

    The best checkpoint is the one with the highest win rate; on a tie the earliest wins, so `best_before_end`
    is True only when an intra-epoch checkpoint is at least as good as every later one. `drop_pp` is how many
    win-rate points (percent) the end checkpoint is below the best; `drop_z` divides the drop by the combined
    binomial standard error of the two win rates (when the table has `win_rate_stderr`), as a rough guide to
    whether the drop is more than judge noise.
    """
    rows = []
    has_stderr = "win_rate_stderr" in policy.columns
    for key, run in policy.groupby(list(RUN), sort=False, dropna=False):
        run = run.sort_values(["epoch_fraction", *(["step"] if "step" in run.columns else [])], kind="stable")
        best = run.loc[run["win_rate"].idxmax()]
        end = _end_row(run)
        drop = float(best["win_rate"] - end["win_rate"])
        spread = float(np.hypot(best["win_rate_stderr"], end["win_rate_stderr"])) if has_stderr else np.nan
        rows.append(
            {
                **dict(zip(RUN, key, strict=True)),
                "checkpoints": len(run),
                "has_final": bool(run["is_final"].any()),
                "best_epoch_fraction": float(best["epoch_fraction"]),
                "best_win_rate": float(best["win_rate"]),
                "best_sqrt_kl": float(best["sqrt_kl"]),
                "end_epoch_fraction": float(end["epoch_fraction"]),
                "end_win_rate": float(end["win_rate"]),
                "end_sqrt_kl": float(end["sqrt_kl"]),
                "best_before_end": bool(best["epoch_fraction"] < end["epoch_fraction"]),
                "drop_pp": 100.0 * drop,
                "drop_z": drop / spread if spread > 0 else np.nan,
            }
        )
    return pd.DataFrame(rows)


def smallest_beta_peaks(peaks: pd.DataFrame) -> pd.DataFrame:
    """Per (objective, model): the run with the smallest DAA beta (the widest KL budget) from `run_peaks`."""
    finite = peaks[np.isfinite(peaks["beta"])]
    if finite.empty:
        return peaks.iloc[0:0].copy()
    index = finite.groupby(["objective", "model"], sort=False)["beta"].idxmin()
    return finite.loc[index.to_numpy()].reset_index(drop=True)


__all__ = ["RUN", "run_peaks", "smallest_beta_peaks"]
