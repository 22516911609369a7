"""Attention masks for batches with document and segment ids (`lit_daa.layouts.rows`), built on the device.

Query q may attend to key k when both are in the same document, k is not after q, and k is in the prompt or in
q's own response (a rejected response never sees the chosen one). Padding forms a document of its own, so no
query row is ever fully masked.

- `sdpa` (and CPU): a dense boolean mask (R, 1, S, S), True where attention is allowed; Hugging Face passes a 4-D
  mask through unchanged and PyTorch's scaled_dot_product_attention reads True as "attend".
- `flex_attention` (CUDA): a FlexAttention `BlockMask` with the same rule, which skips fully masked blocks.
- `segments` (`lit_daa.segment_attention`): no mask at all; the ids themselves go to the attention function,
  which attends segment by segment.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from lit_daa import segment_attention
from lit_daa.errors import InputError
from lit_daa.segment_attention import Segments

SUPPORTED = ("sdpa", "flex_attention", segment_attention.NAME)


def attention_implementation(model: Any) -> str:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return str(getattr(base.config, "_attn_implementation", None) or "eager")


def dense_mask(doc_ids: Tensor, segments: Tensor) -> Tensor:
    """(R, 1, S, S) bool mask from (R, S) document and segment ids."""
    s = doc_ids.shape[1]
    same_doc = doc_ids[:, :, None] == doc_ids[:, None, :]
    causal = torch.ones(s, s, dtype=torch.bool, device=doc_ids.device).tril()
    visible = (segments[:, None, :] == 0) | (segments[:, :, None] == segments[:, None, :])
    return (same_doc & causal & visible).unsqueeze(1)


def block_mask(doc_ids: Tensor, segments: Tensor) -> Any:
    """The same rule as a FlexAttention BlockMask (for models loaded with attn_implementation="flex_attention")."""
    from torch.nn.attention.flex_attention import create_block_mask

    def allowed(b: Tensor, h: Tensor, q: Tensor, k: Tensor) -> Tensor:
        seg_k = segments[b, k]
        same = doc_ids[b, q] == doc_ids[b, k]
        return same & (k <= q) & ((seg_k == 0) | (segments[b, q] == seg_k))

    r, s = doc_ids.shape
    return create_block_mask(allowed, B=r, H=None, Q_LEN=s, KV_LEN=s, device=doc_ids.device)


def attention_mask(model: Any, batch: dict[str, Tensor]) -> Any:
    """The mask to pass as `attention_mask`: the batch's 2-D padding mask, or one built from its document ids."""
    if "doc_ids" not in batch:
        return batch["attention_mask"]
    impl = attention_implementation(model)
    if impl not in MASKS:
        raise InputError(
            "data.layout SharedPrompt and Packed need attention that honours a custom mask "
            f"(attn_implementation sdpa, flex_attention or segments), but the model uses '{impl}'; set "
            "--model.attn_implementation sdpa, or --data.layout Concatenated"
        )
    return MASKS[impl](batch["doc_ids"], batch["segments"])


# the mask each attention implementation reads a branching layout's structure from (segment attention, called
# without its `Segments`, is SDPA and reads the dense mask)
MASKS = {"sdpa": dense_mask, "flex_attention": block_mask, segment_attention.NAME: dense_mask}


def attention_inputs(model: Any, batch: dict[str, Tensor]) -> dict[str, Any]:
    """The attention keyword arguments of the model's forward on a scoring batch.

    With segment attention and a branching layout: the ids as `Segments` and an all-ones padding mask, from which
    transformers builds no mask at all (and no packed-sequence mask from the restarting positions).
    """
    if "doc_ids" in batch and attention_implementation(model) == segment_attention.NAME:
        doc_ids = batch["doc_ids"]
        return {
            "attention_mask": torch.ones_like(doc_ids),
            segment_attention.KWARG: Segments(doc_ids, batch["segments"]),
        }
    return {"attention_mask": attention_mask(model, batch)}
