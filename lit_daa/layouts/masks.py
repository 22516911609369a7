"""Attention masks for batches with document and segment ids (`lit_daa.layouts.rows`), built on the device.

Query q may attend to key k when both are in the same document, k is not after q, and k is in the prompt or in
q's own response (a rejected response never sees the chosen one). Padding forms a document of its own, so no
query row is ever fully masked.

- `sdpa` (and CPU): a dense boolean mask (R, 1, S, S), True where attention is allowed; Hugging Face passes a 4-D
  mask through unchanged and PyTorch's scaled_dot_product_attention reads True as "attend".
- `flex_attention` (CUDA): a FlexAttention `BlockMask` with the same rule, which skips fully masked blocks.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from lit_daa.errors import InputError

SUPPORTED = ("sdpa", "flex_attention")


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
    if impl == "flex_attention":
        return block_mask(batch["doc_ids"], batch["segments"])
    if impl == "sdpa":
        return dense_mask(batch["doc_ids"], batch["segments"])
    raise InputError(
        "data.layout SharedPrompt and Packed need attention that honours a custom mask "
        f"(attn_implementation sdpa or flex_attention), but the model uses '{impl}'; set "
        "--model.attn_implementation sdpa, or --data.layout Concatenated"
    )
