"""The synthetic world's gold reward as a judge: exact, free, and the ground truth of over-optimization."""

from __future__ import annotations

from lit_daa.errors import InputError
from lit_daa.evaluation.judges.base import ScoringJudge
from lit_daa.synthetic.world import GoldReward


class GoldRewardJudge(ScoringJudge):
    """Win if gold(candidate) > gold(reference), tie if equal; prompts must come from the synthetic world.

    The arguments are those of `lit_daa.synthetic.world.GoldReward`; set them to the gold reward of the world the
    policy was trained in (the preference data's `relevance_weight`, `length_weight`, ...).

    Args:
        relevance_weight: gold reward per on-topic word minus off-topic word.
        length_weight: penalty per word below `target_length` (and above it, unless `overlength_weight` is set).
        target_length: the response length, in words, the gold reward likes best.
        overlength_weight: penalty per word above `target_length`; None: the same as `length_weight`.
    """

    def __init__(
        self,
        relevance_weight: float = 1.0,
        length_weight: float = 0.0,
        target_length: int = 6,
        overlength_weight: float | None = None,
    ) -> None:
        self.gold = GoldReward(
            relevance_weight=relevance_weight,
            length_weight=length_weight,
            target_length=target_length,
            overlength_weight=overlength_weight,
        )

    def score(self, prompts: list[str], responses: list[str]) -> list[float]:
        return self.components(prompts, responses)["gold_reward"]

    def components(self, prompts: list[str], responses: list[str]) -> dict[str, list[float]]:
        """gold_reward and its terms gold_relevance, gold_short_penalty, gold_long_penalty per response."""
        try:
            parts = [self.gold.breakdown(p, r) for p, r in zip(prompts, responses, strict=True)]
        except ValueError as err:
            raise InputError(f"GoldRewardJudge only judges prompts of the synthetic world ({err})") from None
        out = {
            f"gold_{name}": [part[name] for part in parts] for name in ("relevance", "short_penalty", "long_penalty")
        }
        out["gold_reward"] = [part["relevance"] - part["short_penalty"] - part["long_penalty"] for part in parts]
        return out
