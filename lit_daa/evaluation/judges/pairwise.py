"""Judges that see both responses at once (an LLM asked "A or B?"): A/B order, prompt filling, verdict parsing.

The candidate is shown first (as A) or second for each item by a seeded hash of the item itself, so the order is
random across items, reproducible, and independent of the item's position (a cached answer stays valid when the
evaluation set is reordered or cut). The answer's LAST "Preferred: X" is read (case and spacing free, markdown
emphasis allowed); "tie", "neither", "both" or "equal" there is a tie; anything else is an invalid judgement.
"""

from __future__ import annotations

import hashlib
import re
from abc import abstractmethod
from dataclasses import dataclass

from lit_daa.errors import InputError
from lit_daa.evaluation.judges.base import Judge, Verdict
from lit_daa.evaluation.judges.templates import TLDR_JUDGE_TEMPLATE

PREFERRED = re.compile(
    r"preferred[\s*_]*:[\s*_\"'`(\[]*(?:summary\s+)?(a|b|tie|neither|both|equal)\b", flags=re.IGNORECASE
)
TIE_WORDS = frozenset({"tie", "neither", "both", "equal"})


@dataclass(frozen=True)
class Comparison:
    """One question to a pairwise judge: the post, the two responses in the order shown, and the filled prompt."""

    post: str
    first: str
    second: str
    message: str


def parse_preference(answer: str | None) -> str | None:
    """The preferred position ("A", "B" or "tie") named by a judge's answer; None when there is none."""
    if answer is None:
        return None
    found = PREFERRED.findall(answer)
    if not found:
        return None
    choice = found[-1].lower()
    return "tie" if choice in TIE_WORDS else choice.upper()


class PairwiseJudge(Judge):
    """Base class: fill `template` per item with the two responses in seeded random order, ask, map back.

    Subclasses implement `ask` (the LLM call). Args: template with {post}, {summary_a}, {summary_b}; seed of the
    A/B order.
    """

    def __init__(self, template: str = TLDR_JUDGE_TEMPLATE, seed: int = 0) -> None:
        try:
            template.format(post="", summary_a="", summary_b="")
        except (KeyError, IndexError, ValueError) as err:
            raise InputError(
                f"judge template must use only the placeholders {{post}}, {{summary_a}} and {{summary_b}} ({err!r})"
            ) from None
        self.template, self.seed = template, seed

    def candidate_first(self, prompt: str, candidate: str, reference: str) -> bool:
        """Whether the candidate is shown as A for this item (a seeded hash of the item)."""
        digest = hashlib.sha256(repr((self.seed, prompt, candidate, reference)).encode()).digest()
        return digest[0] % 2 == 0

    def _judge(self, prompts: list[str], candidates: list[str], references: list[str]) -> list[Verdict]:
        firsts = [self.candidate_first(*item) for item in zip(prompts, candidates, references, strict=True)]
        comparisons = []
        for prompt, cand, ref, cand_first in zip(prompts, candidates, references, firsts, strict=True):
            a, b = (cand, ref) if cand_first else (ref, cand)
            message = self.template.format(post=prompt.strip(), summary_a=a.strip(), summary_b=b.strip())
            comparisons.append(Comparison(post=prompt, first=a, second=b, message=message))
        answers = self.ask(comparisons)
        return [to_verdict(parse_preference(ans), first) for ans, first in zip(answers, firsts, strict=True)]

    @abstractmethod
    def ask(self, comparisons: list[Comparison]) -> list[str | None]:
        """The judge's raw answer per comparison; None where no answer could be had."""


def to_verdict(preference: str | None, candidate_first: bool) -> Verdict:
    """The candidate's verdict from the preferred position ("A", "B", "tie" or None) and where it was shown."""
    if preference == "tie":
        return Verdict.TIE
    if preference is None:
        return Verdict.INVALID
    return Verdict.WIN if (preference == "A") == candidate_first else Verdict.LOSS
