"""An objective that turns non-finite after a number of calls: drives the NaN guard through the real CLI."""

from __future__ import annotations

from lit_daa.objectives import DPO, ObjectiveOutput, PairLogps


class NaNAfter(DPO):
    """DPO whose loss becomes NaN from the `after`-th training call on (validation calls do not count)."""

    def __init__(self, beta: float = 0.1, after: int = 5) -> None:
        super().__init__(beta)
        self.after = after
        self.calls = 0

    def forward(self, logps: PairLogps) -> ObjectiveOutput:
        out = super().forward(logps)
        if logps.policy_chosen.requires_grad:
            self.calls += 1
            if self.calls > self.after:
                out.loss = out.loss * float("nan")
        return out
