"""Layouts: how pairs become model rows (`--data.layout Concatenated | SharedPrompt | Packed`)."""

from lit_daa.layouts.base import Layout, real_tokens, sequence_batch, to_device
from lit_daa.layouts.concatenated import Concatenated
from lit_daa.layouts.packed import Packed
from lit_daa.layouts.shared_prompt import SharedPrompt

__all__ = ["Concatenated", "Layout", "Packed", "SharedPrompt", "real_tokens", "sequence_batch", "to_device"]
