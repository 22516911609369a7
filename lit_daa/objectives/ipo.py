"""IPO (Azar et al. 2023), in the scaling-law paper's unified form and in the DPO reference code's form."""

from __future__ import annotations

from typing import Literal

from lit_daa.errors import InputError
from lit_daa.objectives.base import Objective, ObjectiveOutput, PairLogps


class IPO(Objective):
    """Identity Preference Optimization: a squared loss on the log-ratio margin h.

    Two forms share the name in the literature, for the same beta they aim at different margins:

    - ``form="paper"`` (default, Rafailov et al. 2024, Eq. 2 unified loss): g(u) = (u - 1)^2 with u = beta * h,
      minimised at h = 1 / beta.
    - ``form="azar"`` (Azar et al. with tau = beta, as in the public DPO reference code): (h - 1/(2 beta))^2,
      minimised at h = 1 / (2 beta).

    ``per_token=True`` replaces each sequence log-ratio by its mean over response tokens (as some trainers do)
    before forming h. The default (sums, paper form) matches the paper this project reproduces.

    Args:
        beta: KL-constraint strength (> 0).
        form: "paper" or "azar".
        per_token: average the log-ratios over response tokens.
    """

    def __init__(self, beta: float = 0.1, form: Literal["paper", "azar"] = "paper", per_token: bool = False) -> None:
        super().__init__(beta)
        if form not in ("paper", "azar"):
            raise InputError(f"IPO option form must be 'paper' or 'azar', got {form!r}")
        self.form = form
        self.per_token = bool(per_token)

    @property
    def target_margin(self) -> float:
        """The log-ratio margin h at which the loss is zero."""
        return 1.0 / self.beta if self.form == "paper" else 1.0 / (2.0 * self.beta)

    def forward(self, logps: PairLogps) -> ObjectiveOutput:
        chosen, rejected = logps.log_ratios(per_token=self.per_token)
        h = chosen - rejected
        # Both forms are a parabola in h with its zero at the target margin; only the scale differs.
        scale = self.beta if self.form == "paper" else 1.0
        losses = (scale * (h - self.target_margin)) ** 2
        return self._output(losses, logps)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, form={self.form}, per_token={self.per_token}"
