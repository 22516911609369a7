"""Win rate of candidates against references from a judge's verdicts, with its binomial standard error."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from lit_daa.evaluation.judges.base import Verdict


@dataclass(frozen=True)
class WinRate:
    """Counts of verdicts and the win rate over the valid ones.

    rate = (wins + ties / 2) / judged with judged = wins + losses + ties (invalid judgements are left out);
    stderr = sqrt(rate (1 - rate) / judged). Both are NaN when nothing was judged.
    """

    wins: int
    losses: int
    ties: int
    invalid: int

    @classmethod
    def from_verdicts(cls, verdicts: Iterable[Verdict | str]) -> WinRate:
        counts = Counter(Verdict(v) for v in verdicts)
        return cls(counts[Verdict.WIN], counts[Verdict.LOSS], counts[Verdict.TIE], counts[Verdict.INVALID])

    @property
    def judged(self) -> int:
        return self.wins + self.losses + self.ties

    @property
    def rate(self) -> float:
        return (self.wins + self.ties / 2) / self.judged if self.judged else math.nan

    @property
    def stderr(self) -> float:
        return math.sqrt(self.rate * (1 - self.rate) / self.judged) if self.judged else math.nan
