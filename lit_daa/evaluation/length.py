"""How much of the implicit reward response length explains: R^2 of an ordinary least-squares line."""

from __future__ import annotations

import math
from collections.abc import Sequence


def length_r2(rewards: Sequence[float], lengths: Sequence[float]) -> float:
    """R^2 of regressing `rewards` on `lengths` with an intercept (N of each).

    For one regressor with intercept, R^2 = 1 - SS_res / SS_tot = corr(lengths, rewards)^2, so scaling the rewards
    (any beta) leaves it unchanged. NaN when the lengths or the rewards do not vary (the fit is then undefined:
    e.g. a policy equal to its reference has all rewards 0).
    """
    n = len(rewards)
    if n != len(lengths):
        raise ValueError(f"length_r2 needs as many lengths as rewards, got {len(lengths)} and {n}")
    if n < 2:
        return math.nan
    mean_x, mean_y = sum(lengths) / n, sum(rewards) / n
    sxx = sum((x - mean_x) ** 2 for x in lengths)
    syy = sum((y - mean_y) ** 2 for y in rewards)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in zip(lengths, rewards, strict=True))
    if sxx == 0 or syy == 0:
        return math.nan
    return min(1.0, sxy * sxy / (sxx * syy))
