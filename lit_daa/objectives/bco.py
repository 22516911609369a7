"""BCO on unpaired rows (Jung et al. 2024, "Binary Classifier Optimization for Large Language Model Alignment")."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from lit_daa.objectives.unpaired import RowLogps, RowOutput, UnpairedObjective


class BCO(UnpairedObjective):
    """desirable y: loss = -log sigmoid(beta r - delta); undesirable y: loss = -log sigmoid(-(beta r - delta)).

    r = log pi(y|x)/pi_ref(y|x): the implicit reward is a binary classifier's logit, shifted by delta, the running
    mean of the training batches' mean rewards beta r (each rank's batch counts once; this batch included), as TRL's
    `BCOTrainer` keeps it. The running sum and count are buffers, so a checkpoint resumes them; evaluation reads delta
    without updating it. At beta r = delta each row's loss is log 2.

    Not here: the paper's underlying-distribution matching (UDM), which reweights undesirable rows by a classifier
    trained on prompt embeddings; it needs an embedding model beside the policy.

    Args:
        beta: KL-constraint strength (> 0).
    """

    def __init__(self, beta: float = 0.1) -> None:
        super().__init__(beta)
        self.register_buffer("reward_sum", torch.zeros((), dtype=torch.float64))
        self.register_buffer("reward_count", torch.zeros((), dtype=torch.float64))

    @property
    def delta(self) -> Tensor:
        """The running mean of the training rewards (0 before the first training batch)."""
        return self.reward_sum / self.reward_count.clamp_min(1.0)

    def _update(self, rewards: Tensor) -> None:
        # One value per rank's batch, its mean reward, summed over ranks as TRL gathers them.
        total = torch.stack([rewards.double().mean(), torch.ones((), dtype=torch.float64, device=rewards.device)])
        total = total.to(self.reward_sum.device)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(total)
        self.reward_sum += total[0]
        self.reward_count += total[1]

    def forward(self, rows: RowLogps) -> RowOutput:
        rewards = self.beta * rows.log_ratios()
        if self.training:
            self._update(rewards.detach())
        shifted = rewards - self.delta.to(rewards.dtype)
        losses = torch.where(rows.label, -F.logsigmoid(shifted), -F.logsigmoid(-shifted))
        return self._row_output(losses, rows)
