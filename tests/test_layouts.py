"""Every layout scores every pair exactly as the concatenated layout does: log-probs, losses and gradients, on a
tiny GPT-NeoX and a tiny Llama (grouped-query attention, tied embeddings), with very uneven lengths."""

from __future__ import annotations

import random

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, MistralConfig, Qwen2Config

from lit_daa.errors import InputError
from lit_daa.layouts import Concatenated, Packed, SharedPrompt
from lit_daa.logps import batch_logps
from lit_daa.models import load_causal_lm
from lit_daa.objectives import DPO, PairLogps

LAYOUTS = [SharedPrompt(), Packed(token_budget=64), Packed(token_budget=100_000), Packed(pad_to_multiple_of=16)]


@pytest.mark.parametrize("name", ["llama", "qwen2", "mistral"])
def test_fsdp_finds_the_blocks_of_every_family(name: str) -> None:
    from lit_daa.sharding import transformer_blocks

    model = MODELS[name]()
    blocks = transformer_blocks(model)
    assert len(blocks) == 2 and type(blocks[0]).__name__.endswith("DecoderLayer")


def tiny(config_class: type = LlamaConfig, attn: str = "sdpa") -> torch.nn.Module:
    """A random tiny decoder of a Llama-like family: grouped-query attention, tied embeddings."""
    torch.manual_seed(1)
    config = config_class(
        vocab_size=151,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
    )
    return AutoModelForCausalLM.from_config(config, attn_implementation=attn)


def llama(attn: str = "sdpa") -> torch.nn.Module:
    return tiny(LlamaConfig, attn)


MODELS = {
    "neox": lambda: load_causal_lm("embedded:neox-tiny"),
    "llama": llama,
    "qwen2": lambda: tiny(Qwen2Config),
    "mistral": lambda: tiny(MistralConfig),
}


def pairs(n: int = 7, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)

    def ids(lo: int, hi: int) -> list[int]:
        return [rng.randint(3, 150) for _ in range(rng.randint(lo, hi))]

    # prompts from 1 to 60 tokens, responses from 1 to 40 (EOS = 2 appended as the tokenizer step does)
    return [
        {"index": i, "prompt_ids": ids(1, 60), "chosen_ids": ids(0, 39) + [2], "rejected_ids": ids(0, 39) + [2]}
        for i in range(n)
    ]


def dpo_loss(model: torch.nn.Module, batch: dict, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    sums, counts = batch_logps(model, batch)
    return DPO(0.5)(PairLogps.from_rows(sums, counts, ref)).losses, sums


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("layout", LAYOUTS, ids=repr)
def test_layout_gives_the_concatenated_logps_losses_and_gradients(name: str, layout) -> None:
    model = MODELS[name]().float().train()
    rows = pairs()
    ref = torch.randn(2 * len(rows)) - 30.0  # any fixed reference: the gradient then depends on the policy only

    def run(lay) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        model.zero_grad()
        losses, sums = dpo_loss(model, lay.collate(rows, pad_token_id=0), ref)
        losses.sum().backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        return losses.detach(), sums.detach(), lay.collate(rows, 0)["counts"], grads

    base_losses, base_sums, base_counts, base_grads = run(Concatenated())
    losses, sums, counts, grads = run(layout)
    assert torch.equal(counts, base_counts)
    # 1e-5 plus float32's resolution of a sum of ~-150 (one ulp there is 1.5e-5)
    assert torch.allclose(sums, base_sums, atol=1e-5, rtol=2e-7), (sums - base_sums).abs().max()
    assert torch.allclose(losses, base_losses, atol=1e-5, rtol=0)
    assert grads.keys() == base_grads.keys() and grads
    for key in grads:
        assert torch.allclose(grads[key], base_grads[key], atol=1e-5, rtol=1e-4), key


def test_packing_fills_rows_up_to_the_budget() -> None:
    rows = pairs(12, seed=3)
    sizes = [len(r["prompt_ids"]) + len(r["chosen_ids"]) + len(r["rejected_ids"]) for r in rows]
    batch = Packed(token_budget=150).collate(rows, 0)
    assert batch["input_ids"].shape[0] < len(rows) and batch["input_ids"].shape[1] <= max(150, max(sizes))
    real = int((batch["doc_ids"] >= 0).sum())
    assert real == sum(sizes)  # every token once: prompts are not repeated
    assert Concatenated().collate(rows, 0)["input_ids"].numel() > 2 * real  # what concatenation computes


def test_flex_attention_mask_matches_the_dense_one() -> None:
    model = llama("flex_attention").eval()
    rows = pairs(4, seed=5)
    with torch.no_grad():
        try:
            flex, _ = batch_logps(model, Packed(token_budget=128).collate(rows, 0))
        except Exception as err:  # noqa: BLE001 - FlexAttention needs a compiler toolchain on some CPUs
            pytest.skip(f"FlexAttention forward is not available here ({type(err).__name__})")
        model.config._attn_implementation = "sdpa"
        dense, _ = batch_logps(model, Concatenated().collate(rows, 0))
    assert torch.allclose(flex, dense, atol=1e-4), (flex - dense).abs().max()


def test_eager_attention_is_refused_in_one_sentence() -> None:
    model = llama("eager")
    with pytest.raises(InputError, match="need attention that honours a custom mask .* uses 'eager'"):
        batch_logps(model, SharedPrompt().collate(pairs(2), 0))
    batch_logps(model, Concatenated().collate(pairs(2), 0))  # the concatenated layout works with any attention
