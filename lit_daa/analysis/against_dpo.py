"""Objectives built against over-optimisation, each against DPO on the same seeds: does it flatten the hump, move
the peak, or neither?

The lab runs such objectives (chi-squared PO, DPO-Positive, KTO on the pairs split into unpaired rows, ...) as a
variant of the sweep on one size, with the main grid's seeds. A variant whose objective has no main-grid cell of its
own is compared here with the main grid's DPO cell of the same size, per seed (both runs of a seed share its data
draw and its SFT model), with the statistics of `analysis.statistics.hump`:

- drop change = drop(objective) - drop(DPO): an interval below 0 flattens the hump, above 0 deepens it;
- peak height change = rise(objective) - rise(DPO): the best win rate it reaches, relative to SFT;
- peak position change = sqrt(KL) at the cross-fitted peak, objective minus DPO (seeds whose peak is the SFT
  point are left out of this one): an interval that excludes 0 moves the peak.

The rule, written before the runs: "flattens the hump" when the drop change's 95% interval lies below 0 ("deepens"
above 0); "moves the peak" when the position change's interval excludes 0; "neither" when no interval decides. Each
objective is read on its own intervals; nothing is pooled across objectives. Added after the first runs, because
two objectives reached far less KL than DPO: a curve whose largest sqrt(KL) lies at or below DPO's peak reads
"neither" (it never reaches the KL where DPO's hump is), and one that ends below DPO's largest sqrt(KL) is read
"within its range" (`reach`: its largest sqrt(KL) over DPO's), since a cross-fitted drop of 0 may then only mean
that its curve stops before DPO's falls.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lit_daa.analysis import statistics as st
from lit_daa.analysis.intervals import Interval, t_interval
from lit_daa.analysis.results import Results

BASELINE = "DPO"


def against_dpo(results: Results) -> pd.DataFrame | None:
    """One row per (variant, objective, size) whose objective has no main-grid cell, against the main grid's DPO of
    that size on the seeds both have (None when there is none)."""
    variants = results.variants
    if variants is None or variants.empty:
        return None
    main = st.rows(results, "")
    has_main = set(zip(main["objective"], main["model"], strict=True))
    out = []
    for _, v in variants.drop_duplicates(["variant", "objective", "model"]).iterrows():
        objective, model, variant = v["objective"], v["model"], v["variant"]
        if (objective, model) in has_main or (BASELINE, model) not in has_main:
            continue
        mine, base = st.cell(results, objective, model, variant), st.cell(results, BASELINE, model)
        seeds = np.intersect1d(mine.seeds, base.seeds)
        if seeds.size < 2:
            continue
        a, b = st.hump(mine).loc[seeds], st.hump(base).loc[seeds]
        drop, rise = t_interval(a["drop"] - b["drop"]), t_interval(a["rise"] - b["rise"])
        position = t_interval((a["peak_sqrt_kl"] - b["peak_sqrt_kl"]).dropna())
        me, them = st.describe(mine), st.describe(base)
        out.append(
            {
                "variant": variant,
                "objective": objective,
                "model": model,
                "seeds": int(seeds.size),
                "peak": me["peak"],
                "dpo_peak": them["peak"],
                "peak_sqrt_kl": me["peak_sqrt_kl"],
                "dpo_peak_sqrt_kl": them["peak_sqrt_kl"],
                "max_sqrt_kl": me["max_sqrt_kl"],
                "dpo_max_sqrt_kl": them["max_sqrt_kl"],
                **drop.row("drop_change"),
                **rise.row("rise_change"),
                **position.row("peak_sqrt_kl_change"),
                "reach": me["max_sqrt_kl"] / them["max_sqrt_kl"],
                "reading": reading(drop, position, me["max_sqrt_kl"], them["peak_sqrt_kl"], them["max_sqrt_kl"]),
            }
        )
    return pd.DataFrame(out) if out else None


def reading(
    drop_change: Interval, position_change: Interval, max_sqrt_kl: float, dpo_peak: float, dpo_max: float
) -> str:
    """'flattens the hump' / 'deepens the hump' / 'moves the peak to larger (smaller) KL', joined, or 'neither';
    qualified by the KL the objective reaches: a curve that ends below DPO's peak has no hump to compare, and one that
    ends below DPO's largest KL is compared on a shorter range (a drop of 0 there may only mean it stops sooner)."""
    if max_sqrt_kl <= dpo_peak:
        return (
            f"neither: it stays below the KL of DPO's peak (sqrt(KL) {max_sqrt_kl:.2f} at most, DPO peaks at "
            f"{dpo_peak:.2f})"
        )
    parts = []
    if drop_change.below:
        parts.append("flattens the hump")
    elif drop_change.above:
        parts.append("deepens the hump")
    if position_change.above:
        parts.append("moves the peak to larger KL")
    elif position_change.below:
        parts.append("moves the peak to smaller KL")
    text = "; ".join(parts) if parts else "neither"
    if max_sqrt_kl < dpo_max:
        text += f" (within its range: sqrt(KL) up to {max_sqrt_kl:.2f}, DPO's to {dpo_max:.2f})"
    return text
