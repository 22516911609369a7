"""LD-DPO (Liu et al. 2024, "Length Desensitization in Direct Preference Optimization")."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lit_daa.errors import InputError
from lit_daa.objectives.base import Objective, ObjectiveOutput, PairLogps, PairTokens


class LDDPO(Objective):
    """DPO on length-desensitised log-probs: in each pair, the tokens of the longer response past the shorter
    one's length count with weight `ld_alpha` (< 1), for the policy and the reference alike (TRL's `ld_alpha`).

    log p~(y) = sum_{t < m} log p(y_t) + ld_alpha * sum_{t >= m} log p(y_t), m = min(|y_w|, |y_l|);
    loss = -log sigmoid(beta * h~). `ld_alpha` = 1 is DPO. Needs per-token reference log-probs, so not a cached
    reference (which keeps sums only).

    Args:
        beta: KL-constraint strength (> 0).
        ld_alpha: weight of the longer response's tail, in [0, 1].
    """

    def __init__(self, beta: float = 0.1, ld_alpha: float = 0.5) -> None:
        super().__init__(beta)
        if not 0.0 <= ld_alpha <= 1.0:
            raise InputError(f"LDDPO option ld_alpha must be in [0, 1], got {ld_alpha}")
        self.ld_alpha = float(ld_alpha)

    def _weighted(self, logps: PairLogps) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        tokens = logps.tokens
        if tokens is None or tokens.ref is None:
            raise InputError("LDDPO needs per-token reference log-probs: it cannot use a cached reference")
        b = logps.chosen_tokens.shape[0]
        shared = torch.minimum(logps.chosen_tokens, logps.rejected_tokens)[tokens.seq % b]
        weights = torch.where(tokens.pos < shared, 1.0, self.ld_alpha).to(tokens.policy.dtype)
        policy = _split(tokens, tokens.policy, b, weights)
        reference = _split(tokens, tokens.ref.to(tokens.policy.dtype), b, weights)
        return policy[0], policy[1], reference[0], reference[1]

    def implicit_rewards(self, logps: PairLogps) -> tuple[Tensor, Tensor]:
        pc, pr, rc, rr = self._weighted(logps)
        return (self.beta * (pc - rc)).detach(), (self.beta * (pr - rr)).detach()

    def forward(self, logps: PairLogps) -> ObjectiveOutput:
        pc, pr, rc, rr = self._weighted(logps)
        losses = -F.logsigmoid(self.beta * ((pc - rc) - (pr - rr)))
        chosen, rejected = (self.beta * (pc - rc)).detach(), (self.beta * (pr - rr)).detach()
        return ObjectiveOutput(losses.mean(), losses, chosen, rejected)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, ld_alpha={self.ld_alpha}"


def _split(tokens: PairTokens, values: Tensor, b: int, weights: Tensor) -> tuple[Tensor, Tensor]:
    sums = tokens.sums(values, 2 * b, weights)
    return sums[:b], sums[b:]
