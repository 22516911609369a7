"""Preference metrics as torchmetrics with sum-reduced states, so DDP/FSDP aggregation is exact.

Every metric keeps a running sum and a count; `compute` divides. Averaging per-rank means instead would weight
ranks with fewer pairs wrongly; summing states across ranks gives the exact mean over all pairs.

One collection serves pairs and unpaired rows (`lit_daa.scoring.ScoredPairs` / `ScoredRows`): a metric whose
values a batch does not carry is not updated, and `PreferenceMetrics` leaves metrics never updated out of what it
returns and of `logged`, so a KTO run logs no pair accuracy and a DPO run no KTO reference point.
"""

from __future__ import annotations

from collections.abc import Mapping

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
        self.seen = False  # whether any update carried values for it (a plain attribute: no host sync to read)

    def applies(self, pairs: Mapping[str, Tensor]) -> bool:
        """Whether a batch's values (`ScoredPairs.metric_values` or `ScoredRows.metric_values`) include any for it."""
        return self.field in pairs and pairs[self.field].numel() > 0

    def values(self, **pairs: Tensor) -> Tensor:
        """(B,) the per-pair values this metric averages."""
        return pairs[self.field]

    def update(self, **pairs: Tensor) -> None:
        if not self.applies(pairs):
            return
        self.seen = True
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


class PreferenceMetrics(MetricCollection):
    """A collection of `PairMean`s that updates, returns and logs only the metrics a batch carries values for."""

    def forward(self, **values: Tensor) -> dict[str, Tensor]:
        """This batch's value of every metric it carries values for (and accumulates them), by prefixed name."""
        return {
            name: metric(**values)
            for name, metric in self.items(keep_base=False, copy_state=False)
            if metric.applies(values)
        }

    def compute(self) -> dict[str, Tensor]:
        return {name: metric.compute() for name, metric in logged(self).items()}


def logged(metrics: MetricCollection) -> dict[str, Metric]:
    """The metrics of a collection that have seen values, by prefixed name (what `log_dict` should log)."""
    return {name: m for name, m in metrics.items(keep_base=False, copy_state=False) if getattr(m, "seen", True)}


def preference_metrics(prefix: str) -> PreferenceMetrics:
    """The metric set logged as `{prefix}loss`, `{prefix}rewards/...` and `{prefix}logps/...`.

    `logps/*` are mean sequence log-probs of the dataset responses under the policy. Log-ratios on dataset
    responses are not a KL and are not named one; the KL of the paper is estimated from the policy's samples.
    Unpaired rows log `rewards/desirable`, `rewards/undesirable`, `logps/desirable`, `logps/undesirable` (means over
    rows of each label) and `kl_mismatched`, the mean of the batches' KL estimates from mismatched completions
    (KTO's reference point z0; not `kl`, which names the KL estimated from the policy's samples), instead of the
    pair metrics.
    """
    return PreferenceMetrics(
        {
            "loss": PairMean("losses"),
            "rewards/chosen": PairMean("chosen_rewards"),
            "rewards/rejected": PairMean("rejected_rewards"),
            "rewards/accuracies": RewardAccuracy(),
            "rewards/margins": RewardMargin(),
            "logps/chosen": PairMean("policy_chosen"),
            "logps/rejected": PairMean("policy_rejected"),
            "rewards/desirable": PairMean("desirable_rewards"),
            "rewards/undesirable": PairMean("undesirable_rewards"),
            "logps/desirable": PairMean("policy_desirable"),
            "logps/undesirable": PairMean("policy_undesirable"),
            "kl_mismatched": PairMean("kl_mismatched"),
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
