"""The toy MDP's outputs: the printed table, the per-step CSV and the mass figures."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

from matplotlib.axes import Axes

from lit_daa.toy_mdp.train import RECORD_FIELDS, ToyMDPResult


def format_table(result: ToyMDPResult) -> str:
    """The printed summary: the rank facts, then start -> end masses for each (objective, beta) run."""
    flat = result.num_trajectories - 1 - result.pair_rank
    lines = [
        f"toy tree MDP: depth {result.depth}, {result.num_trajectories} trajectories, {result.policy} policy with "
        f"{result.num_trainable_parameters} trainable parameters ({result.num_free_parameters} free), "
        f"{result.num_pairs} pairs",
        f"pair-matrix rank {result.pair_rank} (of {result.num_trajectories} trajectories, "
        f"{result.num_trainable_parameters} trainable parameters, {result.num_free_parameters} free parameters): "
        f"the loss is flat along {flat} directions of the trajectory distribution",
        f"the loss sees {result.parameter_rank} of the {result.num_free_parameters} free parameter directions at "
        f"pi_ref (flat along {result.num_free_parameters - result.parameter_rank})",
        f"{'objective':<9} {'beta':>6} {'in-data':>15} {'out-of-data':>15} {'chosen':>15} {'rejected':>15} "
        f"{'KL':>6} {'gold':>6}",
    ]
    for first, last in zip(result.initial_records(), result.final_records(), strict=True):
        cells = [
            f"{float(first[key]):.3f} -> {float(last[key]):.3f}"
            for key in ("in_data_mass", "out_of_data_mass", "chosen_mass", "rejected_mass")
        ]
        lines.append(
            f"{last['objective']!s:<9} {float(last['beta']):>6.3g} "
            + " ".join(f"{cell:>15}" for cell in cells)
            + f" {float(last['kl']):>6.2f} {float(last['gold_reward']):>6.2f}"
        )
    return "\n".join(lines)


def write_csv(result: ToyMDPResult, path: str | Path) -> Path:
    """Write every per-step record (columns `RECORD_FIELDS`) and return the path."""
    path = Path(path)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=RECORD_FIELDS)
        writer.writeheader()
        writer.writerows(result.records)
    return path


def _panel_grid(result: ToyMDPResult, ylabel: str, draw: Callable[[Axes, str, float], None]):  # noqa: ANN202
    """A (objective x beta) grid of panels over training steps; `draw(ax, objective, beta)` fills each one."""
    import matplotlib

    matplotlib.use("Agg")  # headless: the figure only goes to a file
    import matplotlib.pyplot as plt

    runs = [(str(r["objective"]), float(r["beta"])) for r in result.initial_records()]
    names = list(dict.fromkeys(name for name, _ in runs))
    betas = list(dict.fromkeys(beta for _, beta in runs))
    fig, axes = plt.subplots(
        len(names), len(betas), figsize=(3.2 * len(betas), 2.6 * len(names)), sharex=True, sharey=True, squeeze=False
    )
    for row, name in enumerate(names):
        for col, beta in enumerate(betas):
            ax = axes[row][col]
            draw(ax, name, beta)
            ax.set_title(f"{name}, beta={beta:g}", fontsize=9)
            ax.set_ylim(-0.02, 1.02)
            if row == len(names) - 1:
                ax.set_xlabel("step")
            if col == 0:
                ax.set_ylabel(ylabel)
    return fig, axes


def _save(fig, path: str | Path) -> Path:  # noqa: ANN001 - a matplotlib Figure
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _run(result: ToyMDPResult, name: str, beta: float) -> list[dict]:
    return [r for r in result.records if r["objective"] == name and float(r["beta"]) == beta]


def plot_masses(result: ToyMDPResult, path: str | Path) -> Path:
    """Save a PNG of the masses over training: one row of panels per objective, one column per beta.

    Each panel shows in-data and out-of-data mass (solid) and chosen and rejected mass (dashed, may overlap).
    """
    curves = (
        ("in_data_mass", "in-data", "-", "tab:blue"),
        ("out_of_data_mass", "out-of-data", "-", "tab:red"),
        ("chosen_mass", "chosen", "--", "tab:green"),
        ("rejected_mass", "rejected", "--", "tab:gray"),
    )

    def draw(ax: Axes, name: str, beta: float) -> None:
        rows = _run(result, name, beta)
        steps = [int(r["step"]) for r in rows]
        for key, label, style, color in curves:
            ax.plot(steps, [float(r[key]) for r in rows], style, color=color, label=label)

    fig, axes = _panel_grid(result, "probability mass", draw)
    axes[0][0].legend(fontsize=7, loc="best")
    fig.suptitle(
        f"toy tree MDP ({result.policy} policy): {result.num_trajectories} trajectories, {result.num_pairs} pairs, "
        f"pair-matrix rank {result.pair_rank}",
        fontsize=10,
    )
    return _save(fig, path)


SUMMARY_FIELDS = ("seed", "objective", "beta", "in_data_start", "in_data_end", "in_data_change", "in_data_min",
                  "min_step", "kl_end", "gold_start", "gold_end")  # fmt: skip


def seed_summary(results: list[ToyMDPResult], seeds: list[int]) -> list[dict[str, float | int | str]]:
    """One row per (seed, objective, beta): in-data mass at the start, the end and its lowest point on the way
    (a transient dip shows as in_data_min below both ends), the final KL and the gold reward."""
    rows = []
    for seed, result in zip(seeds, results, strict=True):
        runs: dict[tuple[str, float], list[dict]] = {}
        for record in result.records:
            runs.setdefault((str(record["objective"]), float(record["beta"])), []).append(record)
        for (objective, beta), records in runs.items():
            mass = [float(r["in_data_mass"]) for r in records]
            low = min(range(len(mass)), key=mass.__getitem__)
            rows.append(
                {"seed": seed, "objective": objective, "beta": beta, "in_data_start": mass[0], "in_data_end": mass[-1],
                 "in_data_change": mass[-1] - mass[0], "in_data_min": mass[low], "min_step": int(records[low]["step"]),
                 "kl_end": float(records[-1]["kl"]), "gold_start": float(records[0]["gold_reward"]),
                 "gold_end": float(records[-1]["gold_reward"])}
            )  # fmt: skip
    return rows


def write_summary(rows: list[dict[str, float | int | str]], path: str | Path) -> Path:
    """Write `seed_summary` rows as CSV (columns `SUMMARY_FIELDS`)."""
    path = Path(path)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=SUMMARY_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def plot_seed_transients(results: list[ToyMDPResult], seeds: list[int], path: str | Path) -> Path:
    """A PNG of in-data mass over training for every seed: one panel per (objective, beta), one line per seed."""
    import matplotlib

    colours = matplotlib.colormaps["viridis"]

    def draw(ax: Axes, name: str, beta: float) -> None:
        for i, result in enumerate(results):
            rows = _run(result, name, beta)
            ax.plot([int(r["step"]) for r in rows], [float(r["in_data_mass"]) for r in rows],
                    color=colours(i / max(len(results) - 1, 1)), lw=1, alpha=0.8)  # fmt: skip

    fig, _ = _panel_grid(results[0], "in-data mass", draw)
    fig.suptitle(f"in-data mass over training, {len(seeds)} seeds (a line each)", fontsize=10)
    return _save(fig, path)
