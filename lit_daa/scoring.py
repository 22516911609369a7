"""The one scoring path: a collated batch -> sequence log-probs -> `PairLogps` (or `RowLogps`) -> objective ->
metric values.

`training_step`, `validation_step`, `test_step` and the sweep's held-out evaluation all call `score_pairs`, so a
change of layout or of where reference log-probs come from lands here once. A batch of unpaired rows (it carries
`label`, see `lit_daa.data.unpaired`) is laid out and scored exactly as a batch of pairs, its 2B sequences being
[completions; mismatched completions]; only the split into the objective's input differs (`ScoredRows`).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from lit_daa.errors import InputError
from lit_daa.logps import batch_token_scores
from lit_daa.objectives import Objective, ObjectiveOutput, PairLogps, RowLogps, RowOutput
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

    def preferred_logratios(self) -> Tensor:
        """(B',) log pi/pi_ref of the preferred responses (the chosen ones), padding left out; needs a reference."""
        assert self.logps.ref_chosen is not None, "scored without a reference"
        values = (self.logps.policy_chosen - self.logps.ref_chosen).detach()
        return values if self.valid is None else values[self.valid]


@dataclass
class ScoredRows:
    """B scored unpaired rows (the sibling of `ScoredPairs`).

    Attributes:
        logps: the rows' and their mismatched sequences' log-probs.
        output: the objective's loss, per-row losses, implicit rewards and KL estimate.
        valid: (B,) bool, False on rows that only pad a rank's share of an evaluation set; None: all valid.
    """

    logps: RowLogps
    output: RowOutput
    valid: Tensor | None = None

    def metric_values(self) -> dict[str, Tensor]:
        """Values for `lit_daa.metrics.preference_metrics`: per-row losses, rewards and log-probs of the desirable
        and of the undesirable rows (each only its rows), and the batch's KL estimate (one value) when the objective
        has one; padding left out."""
        keep = self.logps.label.new_ones(self.logps.label.shape) if self.valid is None else self.valid
        desirable, undesirable = keep & self.logps.label, keep & ~self.logps.label
        rewards, policy = self.output.rewards, self.logps.policy.detach()
        values = {
            "losses": self.output.losses.detach()[keep],
            "desirable_rewards": rewards[desirable],
            "undesirable_rewards": rewards[undesirable],
            "policy_desirable": policy[desirable],
            "policy_undesirable": policy[undesirable],
        }
        if self.output.kl is not None:  # KTO's reference point; objectives without one log none
            values["kl_mismatched"] = self.output.kl.detach().reshape(1)
        return values

    def preferred_logratios(self) -> Tensor:
        """(D,) log pi/pi_ref of the desirable rows' completions, padding left out; needs a reference."""
        assert self.logps.ref is not None, "scored without a reference"
        keep = self.logps.label if self.valid is None else self.logps.label & self.valid
        return (self.logps.policy - self.logps.ref).detach()[keep]


Scored = ScoredPairs | ScoredRows


def score_pairs(policy: nn.Module, reference: Reference, objective: Objective, batch: dict[str, Tensor]) -> Scored:
    """Score the B pairs (or unpaired rows) of a collated batch (see `PreferenceCollator`: 2B sequences).

    Args:
        policy: the model being trained (any strategy's wrapping of a Hugging Face causal LM).
        reference: where reference log-probs come from (`lit_daa.reference`).
        objective: the DAA loss; an unpaired one (`objective.unpaired`) needs a batch of unpaired rows.
        batch: a scoring batch of any layout (`PreferenceCollator`); optional `ref_logps` (2B,) and `valid` (B,);
            `label` (B,) on a batch of unpaired rows.
    """
    check_batch_kind(objective, batch)
    scores = batch_token_scores(policy, batch, collision=objective.needs_collision)
    ref_sums, ref_tokens = reference.scores(batch)
    if objective.unpaired:
        rows = RowLogps.from_rows(scores.sums(batch), batch["counts"], ref_sums, batch["label"])
        return ScoredRows(rows, objective(rows), batch.get("valid"))
    collision = None if scores.collision is None else scores.collision.detach()
    tokens = PairTokens(batch["target_seq"], batch["target_pos"], scores.logps, collision, ref_tokens)
    logps = PairLogps.from_rows(scores.sums(batch), batch["counts"], ref_sums, tokens)
    return ScoredPairs(logps, objective(logps), batch.get("valid"))


def check_batch_kind(objective: Objective, batch: dict[str, Tensor]) -> None:
    """Refuse pairs for an unpaired objective and unpaired rows for a paired one, in one sentence each."""
    check_data_kind(objective, "label" in batch)


def check_data_kind(objective: Objective, unpaired: bool) -> None:
    """Refuse data of the other kind than `objective` trains on (`unpaired`: the data serves unpaired rows), before
    anything is loaded (`lit_daa.cli`) and again on the first batch (other entry points)."""
    name = type(objective).__name__
    if objective.unpaired and not unpaired:
        raise InputError(
            f"model.objective {name} trains on unpaired rows (prompt, completion, label), but the data serves "
            "preference pairs; set --data.unpaired true to split each pair into a desirable and an undesirable row"
        )
    if not objective.unpaired and unpaired:
        raise InputError(
            f"model.objective {name} trains on preference pairs, but the data serves unpaired rows (data.unpaired "
            "is true); pick an unpaired objective such as lit_daa.objectives.KTO, or set --data.unpaired false"
        )
