"""The one scoring path: a collated batch -> sequence log-probs -> `PairLogps` -> objective -> metric values.

`training_step`, `validation_step`, `test_step` and the sweep's held-out evaluation all call `score_pairs`, so a
change of layout or of where reference log-probs come from lands here once.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from lit_daa.logps import batch_token_scores
from lit_daa.objectives import Objective, ObjectiveOutput, PairLogps
from lit_daa.objectives.base import PairTokens
from lit_daa.reference import Reference


@dataclass
class ScoredPairs:
    """B scored pairs.

    Attributes:
        logps: the pairs' sequence log-probs (policy; reference when there is one).
        output: the objective's loss, per-pair losses and implicit rewards.
        valid: (B,) bool, False on pairs that only pad a rank's share of an evaluation set; None: all valid.
    """

    logps: PairLogps
    output: ObjectiveOutput
    valid: Tensor | None = None

    def metric_values(self) -> dict[str, Tensor]:
        """(B',) per-pair values for `lit_daa.metrics.preference_metrics`, padding pairs left out."""
        values = {
            "losses": self.output.losses.detach(),
            "chosen_rewards": self.output.chosen_rewards,
            "rejected_rewards": self.output.rejected_rewards,
            "policy_chosen": self.logps.policy_chosen.detach(),
            "policy_rejected": self.logps.policy_rejected.detach(),
        }
        if self.valid is None:
            return values
        return {name: value[self.valid] for name, value in values.items()}


def score_pairs(policy: nn.Module, reference: Reference, objective: Objective, batch: dict[str, Tensor]) -> ScoredPairs:
    """Score the B pairs of a collated batch (see `PreferenceCollator`: 2B rows [chosen; rejected]).

    Args:
        policy: the model being trained (any strategy's wrapping of a Hugging Face causal LM).
        reference: where reference log-probs come from (`lit_daa.reference`).
        objective: the DAA loss.
        batch: a scoring batch of any layout (`PreferenceCollator`); optional `ref_logps` (2B,) and `valid` (B,).
    """
    scores = batch_token_scores(policy, batch, collision=objective.needs_collision)
    ref_sums, ref_tokens = reference.scores(batch)
    collision = None if scores.collision is None else scores.collision.detach()
    tokens = PairTokens(batch["target_seq"], batch["target_pos"], scores.logps, collision, ref_tokens)
    logps = PairLogps.from_rows(scores.sums(batch), batch["counts"], ref_sums, tokens)
    return ScoredPairs(logps, objective(logps), batch.get("valid"))
