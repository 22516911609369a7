"""What a judge is: it compares each candidate response with a reference response for the same prompt."""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import Enum

from lit_daa.errors import InputError


class Verdict(str, Enum):
    """The candidate's result against the reference; `INVALID` is an unparseable or failed judgement."""

    WIN = "win"
    LOSS = "loss"
    TIE = "tie"
    INVALID = "invalid"


class Judge(ABC):
    """Base class: `judge(prompts, candidates, references)` returns one `Verdict` per item, candidate vs reference.

    Subclasses implement `_judge`; `judge` checks that the three lists line up.
    """

    def judge(self, prompts: list[str], candidates: list[str], references: list[str]) -> list[Verdict]:
        """Verdicts of candidates[i] against references[i] for prompts[i] (N of each)."""
        if not len(prompts) == len(candidates) == len(references):
            raise InputError(
                f"a judge needs as many candidates and references as prompts, got {len(prompts)} prompts, "
                f"{len(candidates)} candidates and {len(references)} references"
            )
        if not prompts:
            return []
        verdicts = self._judge(list(prompts), list(candidates), list(references))
        assert len(verdicts) == len(prompts), f"{type(self).__name__} returned {len(verdicts)} verdicts"
        return verdicts

    @abstractmethod
    def _judge(self, prompts: list[str], candidates: list[str], references: list[str]) -> list[Verdict]:
        """The verdicts for non-empty lists of equal length."""

    def components(self, prompts: list[str], responses: list[str]) -> dict[str, list[float]]:
        """Named per-response scores behind the verdicts, when the judge has them (results-table column -> one
        value per response); a judge without a known reward returns none."""
        return {}


class ScoringJudge(Judge):
    """A judge that scores every (prompt, response) on its own: win if the candidate scores higher, tie if equal."""

    def _judge(self, prompts: list[str], candidates: list[str], references: list[str]) -> list[Verdict]:
        # one scoring call for both sides, so a model judge batches them together
        scores = self.score([*prompts, *prompts], [*candidates, *references])
        n = len(prompts)
        return [compare_scores(c, r) for c, r in zip(scores[:n], scores[n:], strict=True)]

    @abstractmethod
    def score(self, prompts: list[str], responses: list[str]) -> list[float]:
        """One score per (prompt, response); higher is better."""


def compare_scores(candidate: float, reference: float) -> Verdict:
    """WIN, LOSS or TIE from two scores; a NaN score makes the judgement INVALID."""
    if candidate != candidate or reference != reference:  # NaN compares unequal to itself
        return Verdict.INVALID
    if candidate > reference:
        return Verdict.WIN
    return Verdict.LOSS if candidate < reference else Verdict.TIE
