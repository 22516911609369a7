"""ORPO (Hong et al. 2024, "ORPO: Monolithic Preference Optimization without Reference Model")."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from lit_daa.objectives.base import Objective, ObjectiveOutput, PairLogps


class ORPO(Objective):
    """loss = -mean log pi(y_w) - beta * log sigmoid(log odds(y_w) - log odds(y_l)), reference-free.

    With a = mean log pi(y | x) over response tokens, odds(y) = exp(a) / (1 - exp(a)), so
    log odds(y) = a - log(1 - exp(a)). The first term is SFT on the chosen response. The implicit reward is
    beta * a (no reference model is loaded).

    Args:
        beta: the weight lambda of the odds-ratio term (the paper's 0.1).
    """

    requires_reference: ClassVar[bool] = False

    def implicit_rewards(self, logps: PairLogps) -> tuple[Tensor, Tensor]:
        chosen, rejected = _means(logps)
        return (self.beta * chosen).detach(), (self.beta * rejected).detach()

    def forward(self, logps: PairLogps) -> ObjectiveOutput:
        chosen, rejected = _means(logps)
        # log(1 - exp(a)) for a < 0, computed stably
        log_odds = (chosen - rejected) - (torch.log(-torch.expm1(chosen)) - torch.log(-torch.expm1(rejected)))
        losses = -chosen - self.beta * F.logsigmoid(log_odds)
        return self._output(losses, logps)


def _means(logps: PairLogps) -> tuple[Tensor, Tensor]:
    """(B,) mean per-token log-probs of y_w and y_l under the policy (kept below 0 for the log-odds)."""
    chosen = logps.policy_chosen / logps.chosen_tokens.clamp_min(1)
    rejected = logps.policy_rejected / logps.rejected_tokens.clamp_min(1)
    tiny = torch.finfo(chosen.dtype).eps
    return chosen.clamp(max=-tiny), rejected.clamp(max=-tiny)
