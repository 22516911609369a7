"""Supervised fine-tuning on the chosen responses: how a user makes the reference model."""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from lit_daa.objectives.base import Objective, ObjectiveOutput, PairLogps


class SFT(Objective):
    """Token-averaged negative log-likelihood of the chosen responses; rejected responses are ignored.

    loss = -sum_i log pi(y_w,i | x_i) / sum_i |y_w,i| over the batch, so long and short answers weigh by their
    tokens as in ordinary language-model training. The per-pair `losses` are -log pi(y_w|x)/|y_w|.
    The reported "rewards" are the mean per-token log-likelihoods of chosen and rejected (no reference), so
    the accuracy metric tells whether SFT already ranks the pairs. `beta` is unused and kept for a uniform CLI.
    """

    requires_reference: ClassVar[bool] = False

    def __init__(self, beta: float = 1.0) -> None:
        super().__init__(beta)

    def implicit_rewards(self, logps: PairLogps) -> tuple[Tensor, Tensor]:
        chosen = logps.policy_chosen / logps.chosen_tokens.clamp_min(1)
        rejected = logps.policy_rejected / logps.rejected_tokens.clamp_min(1)
        return chosen.detach(), rejected.detach()

    def forward(self, logps: PairLogps) -> ObjectiveOutput:
        losses = -logps.policy_chosen / logps.chosen_tokens.clamp_min(1)
        loss = -logps.policy_chosen.sum() / logps.chosen_tokens.sum().clamp_min(1)
        chosen, rejected = self.implicit_rewards(logps)
        return ObjectiveOutput(loss, losses, chosen, rejected)

    def extra_repr(self) -> str:
        return ""
