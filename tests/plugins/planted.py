"""A synthetic results table with a planted over-optimisation hump, for tests and for trying `lit-daa analyze`.

Win rate follows the log (RL) form over the SFT win rate, R(d) = R0 + d (alpha - beta log d) (+ optional noise),
with d = sqrt(KL). A run with DAA beta b ends the epoch at d_end = reach[model] / sqrt(b) and is at
d(t) = d_end sqrt(t) after a fraction t of the epoch (KL linear in t), so runs with small b pass the peak
d* = exp(alpha / beta - 1) inside the epoch and their best checkpoint comes before its end. The other columns of
docs/results_schema.md are filled with simple, documented stand-ins.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from lit_daa.results_schema import COLUMNS

PAIRS_PER_EPOCH = 1024
BATCH = 64
JUDGED = 256  # evaluation prompts, for the binomial standard error

DEFAULT_MODELS: Mapping[str, int] = {"tiny": 1_000_000, "small": 4_000_000}
DEFAULT_REACH: Mapping[str, float] = {"tiny": 0.7, "small": 0.5}
DEFAULT_LENGTH_R2: Mapping[str, float] = {"tiny": 0.5, "small": 0.25}


def planted_results(
    objectives: Sequence[str] = ("DPO", "IPO"),
    models: Mapping[str, int] = DEFAULT_MODELS,
    betas: Sequence[float] = (0.01, 0.03, 0.1, 0.3, 1.0),
    epoch_fractions: Sequence[float] = (0.25, 0.5, 0.75, 1.0),
    coefficients: Mapping[tuple[str, str], tuple[float, float]] | tuple[float, float] = (0.12, 0.08),
    sft_win_rate: Mapping[str, float] | float = 0.35,
    reach: Mapping[str, float] = DEFAULT_REACH,
    length_r2_scale: Mapping[str, float] = DEFAULT_LENGTH_R2,
    noise: float = 0.0,
    seed: int = 0,
    seeds: int = 1,
    seed_sd: float = 0.0,
) -> pd.DataFrame:
    """A results table (docs/results_schema.md) with planted log-form win rates.

    Args:
        objectives: objective names of the trained runs.
        models: model name -> params; each gets an SFT reference row.
        betas: DAA betas, one run per (objective, model, beta).
        epoch_fractions: checkpoints inside the epoch; the last (1.0) is the end-of-epoch one.
        coefficients: the planted (alpha, beta) of the log form, one pair for all cells or one per
            (objective, model).
        sft_win_rate: R0, one number or one per model.
        reach: per model, d_end at DAA beta 1 (smaller models reach more KL).
        length_r2_scale: per model, the length R^2 approached at large KL.
        noise: standard deviation of Gaussian noise added to the win rates.
        seed: for the noise.
        seeds: training seeds per run (each a run of its own with its own noise; run ids get `-s{seed}`).
        seed_sd: standard deviation of a per-seed shift of every win rate of that seed, in every cell (what a seed's
            shared data draw does to all its runs; paired contrasts cancel it).

    Returns:
        The table with every column of `lit_daa.results_schema` (the stand-ins below, NaN where there is none).
    """
    rng = np.random.default_rng(seed)
    shift = rng.normal(0.0, seed_sd, size=seeds) if seed_sd > 0 else np.zeros(seeds)
    rows: list[dict[str, object]] = []
    final_fraction = max(epoch_fractions)
    for model, params in models.items():
        r0 = float(sft_win_rate[model] if isinstance(sft_win_rate, Mapping) else sft_win_rate)
        rows.append(_reference_row(model, params, r0))
        for objective in objectives:
            alpha, beta = coefficients[objective, model] if isinstance(coefficients, Mapping) else coefficients
            for daa_beta, run_seed, t in itertools.product(betas, range(seeds), epoch_fractions):
                d_end = reach[model] / math.sqrt(daa_beta)
                d = d_end * math.sqrt(t)
                win = r0 + d * (alpha - beta * math.log(d)) + (rng.normal(0.0, noise) if noise > 0 else 0.0)
                win += shift[run_seed]
                win = min(max(win, 0.0), 1.0)
                kl = d * d
                r2 = length_r2_scale[model] * d / (1.0 + d)
                rows.append(
                    {
                        "run_id": f"{model}-{objective}-beta{daa_beta:g}{f'-s{run_seed}' if seeds > 1 else ''}",
                        "objective": objective,
                        "variant": "",
                        "seed": run_seed,
                        "beta": daa_beta,
                        "model": model,
                        "params": params,
                        "step": round(t * PAIRS_PER_EPOCH / BATCH),
                        "examples_seen": round(t * PAIRS_PER_EPOCH),
                        "epoch_fraction": t,
                        "is_final": t == final_fraction,
                        "kl": kl,
                        "kl_stderr": 0.05 * kl + 0.01,
                        "sqrt_kl": d,
                        # Eq. 7 stand-in: the reverse KL tracks the forward one, the chosen log-ratio its negative.
                        "forward_kl": 0.8 * kl,
                        "forward_kl_stderr": 0.04 * kl + 0.01,
                        "win_rate": win,
                        "win_rate_stderr": math.sqrt(win * (1.0 - win) / JUDGED),
                        "ties": 0,
                        "invalid": 0,
                        "mean_length": 40.0 + 8.0 * d,
                        "length_r2": r2,
                        "val_accuracy": 0.55 + 0.1 * math.tanh(d) + rng.normal(0.0, 0.02),
                        "val_loss": 0.69 - 0.05 * d + rng.normal(0.0, 0.02),
                        "chosen_logratio": -0.8 * kl + rng.normal(0.0, 0.05),
                    }
                )
    return pd.DataFrame(rows).reindex(columns=COLUMNS)


def _reference_row(model: str, params: int, win_rate: float) -> dict[str, object]:
    """The SFT reference row of one model size: d = 0, no DAA beta."""
    return {
        "run_id": f"{model}-sft",
        "objective": "SFT",
        "variant": "",
        "seed": 0,
        "beta": float("nan"),
        "model": model,
        "params": params,
        "step": 0,
        "examples_seen": 0,
        "epoch_fraction": 0.0,
        "is_final": True,
        "kl": 0.0,
        "kl_stderr": 0.0,
        "sqrt_kl": 0.0,
        "forward_kl": 0.0,
        "forward_kl_stderr": 0.0,
        "win_rate": win_rate,
        "win_rate_stderr": math.sqrt(win_rate * (1.0 - win_rate) / JUDGED),
        "ties": 0,
        "invalid": 0,
        "mean_length": 40.0,
        "length_r2": float("nan"),
        "val_accuracy": float("nan"),
        "val_loss": float("nan"),
        "chosen_logratio": 0.0,
    }


__all__ = ["planted_results"]
