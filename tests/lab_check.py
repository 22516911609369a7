"""An independent check of a committed lab results table against its report, sharing no code with lit_daa.

    python tests/lab_check.py docs/lab    # reads results.csv, humps.csv and fit_form.csv there; exit 1 on mismatch

Recomputed from results.csv with numpy and the csv module only, per (objective, size) of the main grid:

- the cross-fitted drop: for each seed, the peak (the SFT point at d = 0 a candidate) and the 3 highest-d points
  beyond it are picked on the mean curve of the other seeds and read on that seed; the drop is the mean over seeds
  with its 95% t interval (t quantiles from a table here, not from scipy);
- the log and quadratic forms fitted per seed to that seed's checkpoints (win rate minus that seed's SFT win rate,
  no intercept) by least squares, and the geometric mean over seeds of their RMSE ratio.
"""

from __future__ import annotations

import csv
import math
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

# t(0.975, df) for df = 1..30
T975 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)


def read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def number(row: dict[str, str], key: str) -> float:
    value = row.get(key, "")
    return float(value) if value not in ("", "nan", "NaN", "None") else math.nan


def cells(rows: list[dict[str, str]]) -> tuple[dict, dict]:
    """(objective, model) -> {seed -> {(beta, fraction) -> (sqrt_kl, win_rate)}}, and (model, seed) -> SFT win rate
    (seed None: the one SFT row every seed of that size shares)."""
    grid: dict = defaultdict(lambda: defaultdict(dict))
    sft: dict = defaultdict(list)
    for row in rows:
        if row["objective"] == "SFT":
            sft[row["model"], row.get("seed", "0")].append(number(row, "win_rate"))
        elif not row.get("variant"):
            key = (number(row, "beta"), round(number(row, "epoch_fraction"), 3))
            grid[row["objective"], row["model"]][row.get("seed", "0")][key] = (
                math.sqrt(max(number(row, "kl"), 0.0)),
                number(row, "win_rate"),
            )
    seeds_per_model = defaultdict(set)
    for model, seed in sft:
        seeds_per_model[model].add(seed)
    out = {}
    for (model, seed), values in sft.items():
        out[model, None if len(seeds_per_model[model]) == 1 else seed] = float(np.mean(values))
    return grid, out


def sft_of(sft: dict, model: str, seed: str) -> float:
    return sft.get((model, seed), sft.get((model, None), math.nan))


def cross_fitted_drops(seeds: dict, keys: list, sft: dict, model: str) -> list[float]:
    drops = []
    for s in seeds:
        others = [o for o in seeds if o != s]
        mean_d = {k: np.mean([seeds[o][k][0] for o in others]) for k in keys}
        mean_w = {k: np.mean([seeds[o][k][1] for o in others]) for k in keys}
        sft_others = np.mean([sft_of(sft, model, o) for o in others])
        best = max(keys, key=lambda k: mean_w[k])
        at_sft = sft_others >= mean_w[best]
        peak_d = 0.0 if at_sft else mean_d[best]
        peak = sft_of(sft, model, s) if at_sft else seeds[s][best][1]
        beyond = sorted((k for k in keys if mean_d[k] > peak_d), key=lambda k: -mean_d[k])[:3]
        drops.append(peak - np.mean([seeds[s][k][1] for k in beyond]) if beyond else 0.0)
    return drops


def rmse_log_ratio(points: list[tuple[float, float]], r0: float) -> float:
    d = np.array([p[0] for p in points])
    w = np.array([p[1] for p in points]) - r0
    safe = np.where(d > 0, d, 1.0)
    rmse = {}
    for name, second in (("log", -d * np.log(safe)), ("quad", -d * d)):
        design = np.column_stack([d, second])
        coef = np.linalg.lstsq(design, w, rcond=None)[0]
        rmse[name] = math.sqrt(np.mean((w - design @ coef) ** 2))
    return math.log(rmse["log"] / rmse["quad"])


def check(folder: Path) -> list[str]:
    rows = read(folder / "results.csv")
    grid, sft = cells(rows)
    problems = []
    report = {(r["objective"], r["model"]): r for r in read(folder / "humps.csv")}
    ratios = {(r["objective"], r["model"]): r for r in read(folder / "fit_form.csv")}
    for (objective, model), seeds in sorted(grid.items()):
        keys = sorted(set.intersection(*(set(s) for s in seeds.values())))
        drops = cross_fitted_drops(seeds, keys, sft, model) if len(seeds) > 1 else []
        drop = float(np.mean(drops)) if drops else math.nan
        n = len(drops)
        half = T975[n - 2] * np.std(drops, ddof=1) / math.sqrt(n) if 2 <= n <= 31 else math.nan
        theirs = report.get((objective, model))
        if theirs is None:
            problems.append(f"{objective}/{model}: no row in humps.csv")
            continue
        if not math.isclose(drop, number(theirs, "drop"), abs_tol=1e-9):
            problems.append(f"{objective}/{model}: drop {drop:.4f} vs report {theirs['drop']}")
        if not math.isclose(drop - half, number(theirs, "drop_low"), abs_tol=1e-3):
            problems.append(f"{objective}/{model}: drop lower end {drop - half:.4f} vs report {theirs['drop_low']}")
        logs = [rmse_log_ratio([seeds[s][k] for k in seeds[s]], sft_of(sft, model, s)) for s in seeds]
        ratio = math.exp(float(np.mean(logs)))
        theirs = ratios.get((objective, model))
        if theirs is None or not math.isclose(ratio, float(theirs["rmse_ratio"]), rel_tol=1e-6):
            problems.append(f"{objective}/{model}: RMSE ratio {ratio:.4f} vs report {theirs and theirs['rmse_ratio']}")
        print(f"{objective:5} {model:5} drop {100 * drop:5.1f} +- {100 * half:4.1f} pp over {n} seeds, "
              f"RMSE log/quad {ratio:.2f}")  # fmt: skip
    return problems


if __name__ == "__main__":
    found = check(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/lab"))
    print("\n".join(found) if found else "the independent check agrees with the report")
    raise SystemExit(1 if found else 0)
