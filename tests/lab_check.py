"""An independent check of a committed lab results table against its report, sharing no code with lit_daa.

    python tests/lab_check.py docs/lab    # reads results.csv, humps.csv and fit_form.csv there; exit 1 on mismatch

Recomputed from results.csv with numpy and the csv module only:

- the hump per (objective, size): seed means per (beta, epoch fraction), the SFT win rate at d = 0, the peak, whether
  it is interior, and the drop to the mean of the 3 highest-KL points; its uncertainty here is a t-free normal
  interval from the per-seed drops (each seed's own curve), a different method from the report's bootstrap;
- the log and quadratic forms fitted to every checkpoint of the cell (win rate minus the SFT win rate, no
  intercept) by least squares, and their RMSE ratio.
"""

from __future__ import annotations

import csv
import math
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np


def read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def number(row: dict[str, str], key: str) -> float:
    value = row.get(key, "")
    return float(value) if value not in ("", "nan", "NaN", "None") else math.nan


def cells(rows: list[dict[str, str]]) -> tuple[dict, dict]:
    """(objective, model) -> {seed -> {(beta, fraction) -> (sqrt_kl, win_rate)}}, and model -> SFT win rate."""
    grid: dict = defaultdict(lambda: defaultdict(dict))
    sft = {}
    for row in rows:
        if row["objective"] == "SFT":
            sft[row["model"]] = number(row, "win_rate")
        elif not row.get("variant"):
            key = (number(row, "beta"), number(row, "epoch_fraction"))
            grid[row["objective"], row["model"]][row.get("seed", "0")][key] = (
                math.sqrt(max(number(row, "kl"), 0.0)),
                number(row, "win_rate"),
            )
    return grid, sft


def drop_of(points: dict, r0: float) -> tuple[float, bool]:
    """(peak - mean of the 3 highest-d points, peak interior) for {key -> (d, w)} plus (0, r0)."""
    values = sorted(points.values())
    top = np.mean([w for _, w in values[-3:]])
    everything = sorted([(0.0, r0), *values])
    ds = [d for d, _ in everything]
    best = max(range(len(everything)), key=lambda i: (everything[i][1], -everything[i][0]))
    return max(w for _, w in everything) - top, min(ds) < everything[best][0] < max(ds)


def check(folder: Path) -> list[str]:
    rows = read(folder / "results.csv")
    grid, sft = cells(rows)
    problems = []
    report = {(r["objective"], r["model"]): r for r in read(folder / "humps.csv")}
    ratios = {(r["objective"], r["model"]): r for r in read(folder / "fit_form.csv")}
    for (objective, model), seeds in sorted(grid.items()):
        keys = sorted(set.intersection(*(set(s) for s in seeds.values())))
        mean = {k: tuple(np.mean([seeds[s][k][i] for s in seeds]) for i in (0, 1)) for k in keys}
        drop, interior = drop_of(mean, sft[model])
        per_seed = [drop_of({k: seeds[s][k] for k in keys}, sft[model])[0] for s in seeds]
        half = 1.96 * np.std(per_seed, ddof=1) / math.sqrt(len(per_seed)) if len(per_seed) > 1 else math.nan
        hump = interior and drop - half > 0
        theirs = report.get((objective, model))
        if theirs is None:
            problems.append(f"{objective}/{model}: no row in humps.csv")
            continue
        if not math.isclose(drop, float(theirs["drop"]), abs_tol=1e-9) or interior != (theirs["interior"] == "True"):
            problems.append(f"{objective}/{model}: drop {drop:.4f} interior {interior} vs report {theirs['drop']}")
        if hump != (theirs["hump"] == "True"):
            problems.append(
                f"{objective}/{model}: hump {hump} (drop {drop:.3f} +- {half:.3f}) vs report {theirs['hump']}"
            )
        # the two forms, gain offset, every checkpoint of every seed
        d = np.array([seeds[s][k][0] for s in seeds for k in seeds[s]])
        w = np.array([seeds[s][k][1] for s in seeds for k in seeds[s]]) - sft[model]
        safe = np.where(d > 0, d, 1.0)
        rmse = {}
        for name, second in (("log", -d * np.log(safe)), ("quad", -d * d)):
            design = np.column_stack([d, second])
            coef = np.linalg.lstsq(design, w, rcond=None)[0]
            rmse[name] = math.sqrt(np.mean((w - design @ coef) ** 2))
        ratio = rmse["log"] / rmse["quad"]
        theirs = ratios.get((objective, model))
        if theirs is None or not math.isclose(ratio, float(theirs["rmse_ratio"]), rel_tol=1e-6):
            problems.append(f"{objective}/{model}: RMSE ratio {ratio:.4f} vs report {theirs and theirs['rmse_ratio']}")
        print(f"{objective:5} {model:5} drop {100 * drop:5.1f} +- {100 * half:4.1f} pp interior {interior!s:5} "
              f"hump {hump!s:5} RMSE log/quad {ratio:.2f}")  # fmt: skip
    return problems


if __name__ == "__main__":
    found = check(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/lab"))
    print("\n".join(found) if found else "the independent check agrees with the report")
    raise SystemExit(1 if found else 0)
