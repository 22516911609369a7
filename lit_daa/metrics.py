"""Preference metrics as torchmetrics with sum-reduced states, so DDP/FSDP aggregation is exact.

Every metric keeps a running sum and a count; `compute` divides. Averaging per-rank means instead would weight
ranks with fewer pairs wrongly; summing states across ranks gives the exact mean over all pairs.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric, MetricCollection


class PairMean(Metric):
    """Mean over pairs of one per-pair quantity, picked from the update kwargs by `field`.

    Args:
        field: the keyword of `update` holding a (B,) tensor.
    """

    full_state_update = False
    higher_is_better = None

    def __init__(self, field: str) -> None:
        super().__init__()
        self.field = field
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def values(self, **pairs: Tensor) -> Tensor:
        """(B,) the per-pair values this metric averages."""
        return pairs[self.field]

    def update(self, **pairs: Tensor) -> None:
        v = self.values(**pairs).detach().double()
        self.total += v.sum()
        self.count += v.numel()

    def compute(self) -> Tensor:
        return (self.total / self.count.clamp_min(1)).float()


class RewardAccuracy(PairMean):
    """Implicit-reward accuracy: the fraction of pairs with r(x, y_w) > r(x, y_l) (ties count as wrong)."""

    higher_is_better = True

    def __init__(self) -> None:
        super().__init__("chosen_rewards")

    def values(self, **pairs: Tensor) -> Tensor:
        return (pairs["chosen_rewards"] > pairs["rejected_rewards"]).double()


class RewardMargin(PairMean):
    """Mean implicit-reward margin r(x, y_w) - r(x, y_l)."""

    def __init__(self) -> None:
        super().__init__("chosen_rewards")

    def values(self, **pairs: Tensor) -> Tensor:
        return pairs["chosen_rewards"] - pairs["rejected_rewards"]


def preference_metrics(prefix: str) -> MetricCollection:
    """The metric set logged as `{prefix}loss`, `{prefix}rewards/...` and `{prefix}logps/...`.

    `logps/*` are mean sequence log-probs of the dataset responses under the policy. Log-ratios on dataset
    responses are not a KL and are not named one; the KL of the paper is estimated from the policy's samples.
    """
    return MetricCollection(
        {
            "loss": PairMean("losses"),
            "rewards/chosen": PairMean("chosen_rewards"),
            "rewards/rejected": PairMean("rejected_rewards"),
            "rewards/accuracies": RewardAccuracy(),
            "rewards/margins": RewardMargin(),
            "logps/chosen": PairMean("policy_chosen"),
            "logps/rejected": PairMean("policy_rejected"),
        },
        prefix=prefix,
        compute_groups=False,
    )


class SequenceKL(Metric):
    """Monte-Carlo KL(pi || pi_ref) from sequences sampled from pi, exact under DDP/FSDP.

    Each update adds per-sample sequence log-ratios log pi(y|x) - log pi_ref(y|x) (y ~ pi); the states are their
    sum, sum of squares and count in float64, summed across ranks, so a merged metric equals one computed on all
    samples at once. `compute` gives {"kl": mean, "kl_stderr": sample std (ddof 1) / sqrt(n), "sqrt_kl":
    sqrt(max(mean, 0))} (the paper's x-axis d); the standard error is NaN below 2 samples.
    """

    full_state_update = False
    higher_is_better = None

    def __init__(self) -> None:
        super().__init__()
        for name in ("total", "total_sq", "count"):
            self.add_state(name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, logratios: Tensor) -> None:
        """Add (N,) per-sample sequence log-ratios."""
        values = logratios.detach().double().reshape(-1)
        self.total += values.sum()
        self.total_sq += (values * values).sum()
        self.count += values.numel()

    def compute(self) -> dict[str, Tensor]:
        n = self.count
        mean = self.total / n.clamp_min(1)
        var = (self.total_sq - n * mean * mean) / (n - 1).clamp_min(1)
        stderr = torch.where(n > 1, var.clamp_min(0).sqrt() / n.clamp_min(1).sqrt(), torch.tensor(float("nan")))
        mean = torch.where(n > 0, mean, torch.tensor(float("nan"), dtype=torch.float64))
        return {"kl": mean, "kl_stderr": stderr, "sqrt_kl": mean.clamp_min(0).sqrt()}
