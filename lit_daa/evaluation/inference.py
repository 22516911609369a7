"""Running models for evaluation: eval mode and no gradients for the duration, the caller's mode restored after."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def inference(*models: nn.Module) -> Iterator[None]:
    """Put `models` in eval mode under `torch.no_grad()`, and give each back its training flag afterwards.

    Dropout left on would make the sampled distribution and the scored one differ, which biases the KL estimate;
    restoring the flag matters because evaluation runs in the middle of training (intra-epoch checkpoints).
    """
    flags = [m.training for m in models]
    for m in models:
        m.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, flag in zip(models, flags, strict=True):
            m.train(flag)


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (where its inputs must go)."""
    return next(model.parameters()).device
