"""Length exploitation (PAPER.md Fig. 3): how much of the implicit reward response length explains.

`length_r2` is, per checkpoint, the R^2 of regressing the samples' implicit reward on their length. The paper
finds it higher for smaller models and smaller DAA beta (wider KL budgets), i.e. they lean on length.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lit_daa.analysis.correlations import correlate


def length_points(policy: pd.DataFrame) -> pd.DataFrame:
    """The checkpoints that have both a length R^2 and a KL estimate."""
    return policy[policy["length_r2"].notna() & policy["kl"].notna()]


def length_table(policy: pd.DataFrame) -> pd.DataFrame:
    """The end-of-epoch checkpoints with their KL, response length and length R^2, one row per run."""
    cols = ("objective", "model", "beta", "kl", "sqrt_kl", "mean_length", "length_r2", "win_rate")
    final = length_points(policy)
    final = final[final["is_final"]]
    return final[[c for c in cols if c in final.columns]].reset_index(drop=True)


def length_summary(policy: pd.DataFrame, models: list[str]) -> pd.DataFrame:
    """Per model size: the level of length R^2 and how it moves with KL and with the DAA beta.

    Columns: n (all checkpoints), mean and median R^2, the least-squares slope of R^2 on KL (per nat), the
    Pearson r of R^2 with KL over all checkpoints, and the Spearman rho of the end-of-epoch R^2 with the DAA beta
    within each objective, averaged over objectives (negative when smaller beta means more length reliance;
    betas of different objectives are not comparable, hence the per-objective ranks).
    """
    points = length_points(policy)
    rows = []
    for model in models:
        group = points[points["model"] == model]
        if group.empty:
            continue
        kl, r2 = group["kl"].to_numpy(float), group["length_r2"].to_numpy(float)
        slope = float(np.polyfit(kl, r2, 1)[0]) if len(group) >= 2 and np.ptp(kl) > 0 else math.nan
        final = group[group["is_final"]]
        rhos = [correlate(g["beta"], g["length_r2"]).spearman_rho for _, g in final.groupby("objective")]
        rhos = [rho for rho in rhos if math.isfinite(rho)]
        rows.append(
            {
                "model": model,
                "n": len(group),
                "mean_r2": float(r2.mean()),
                "median_r2": float(np.median(r2)),
                "slope_per_nat": slope,
                "pearson_r_with_kl": correlate(kl, r2).pearson_r,
                "spearman_rho_with_beta": float(np.mean(rhos)) if rhos else math.nan,
                "mean_length": float(group["mean_length"].mean()) if "mean_length" in group else math.nan,
            }
        )
    return pd.DataFrame(rows)


__all__ = ["length_points", "length_summary", "length_table"]
