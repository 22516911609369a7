"""`Weighted`: several objectives summed with weights, e.g. RPO = DPO + alpha * SFT (TRL's `loss_weights`)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from lit_daa.errors import InputError
from lit_daa.objectives.base import Objective, ObjectiveOutput, PairLogps


class Weighted(Objective):
    """loss = sum_i weight_i * loss_i over the parts; per-pair losses likewise.

    Needs a reference exactly when one of its parts does. The implicit rewards (and so the accuracy and margin
    metrics) are the first part's. Each part's loss is returned in `ObjectiveOutput.parts` and logged as
    `train/loss/<part>` (the part's class name in lower case, numbered when repeated).

    Args:
        parts: the objectives, e.g. [DPO, SFT] for RPO.
        weights: one weight per part; None: all 1.
    """

    def __init__(self, parts: Sequence[Objective], weights: Sequence[float] | None = None) -> None:
        if not parts:
            raise InputError("Weighted objective needs at least one part")
        unpaired = [type(p).__name__ for p in parts if p.unpaired]
        if unpaired:
            raise InputError(
                f"Weighted objective parts must train on preference pairs, but {unpaired[0]} trains on unpaired rows; "
                "use it on its own"
            )
        weights = list(weights) if weights is not None else [1.0] * len(parts)
        if len(weights) != len(parts):
            raise InputError(f"Weighted objective has {len(parts)} parts but {len(weights)} weights")
        super().__init__(parts[0].beta)
        self.parts = nn.ModuleList(parts)
        self.weights = [float(w) for w in weights]
        self.requires_reference = any(p.requires_reference for p in parts)  # per instance: depends on the parts
        self.needs_collision = any(p.needs_collision for p in parts)
        names = [type(p).__name__.lower() for p in parts]
        self.names = [n if names.count(n) == 1 else f"{n}{i}" for i, n in enumerate(names)]

    def forward(self, logps: PairLogps) -> ObjectiveOutput:
        outs = [part(logps) for part in self.parts]
        loss = sum(w * o.loss for w, o in zip(self.weights, outs, strict=True))
        losses = sum(w * o.losses for w, o in zip(self.weights, outs, strict=True))
        parts = {name: o.loss.detach() for name, o in zip(self.names, outs, strict=True)}
        return ObjectiveOutput(loss, losses, outs[0].chosen_rewards, outs[0].rejected_rewards, parts)

    def extra_repr(self) -> str:
        return ", ".join(f"{w} x {n}" for w, n in zip(self.weights, self.names, strict=True))
