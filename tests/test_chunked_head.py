"""The chunked LM head (`lit_daa.chunked_head`) against autograd through the whole logits: values and the gradients
of the hidden states, weight and bias, in float64 (exact to rounding), float32 and bfloat16; and through a real
model, the default `ChunkedHead` against `LogitsHead` (log-probs, WPO's collision term and every parameter's
gradient), with the fallbacks for heads it does not handle."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, Gemma2Config

from lit_daa.chunked_head import chunked_token_scores
from lit_daa.layouts import Concatenated, Packed, SharedPrompt
from lit_daa.logps import ChunkedHead, LogitsHead, batch_token_scores, token_scores
from lit_daa.models import load_causal_lm


def reference(hidden, weight, bias, targets):  # noqa: ANN001, ANN202 - the naive computation
    logits = torch.nn.functional.linear(hidden, weight, bias)
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    logp = torch.log_softmax(logits, -1)
    collision = torch.logsumexp(2 * logp, -1)
    return logp.gather(-1, targets[:, None]).squeeze(-1), collision


def inputs(dtype: torch.dtype, n: int = 37, h: int = 8, v: int = 23, bias: bool = True):  # noqa: ANN201
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(n, h, generator=g, dtype=torch.float64).to(dtype).requires_grad_()
    weight = torch.randn(v, h, generator=g, dtype=torch.float64).to(dtype).requires_grad_()
    b = torch.randn(v, generator=g, dtype=torch.float64).to(dtype).requires_grad_() if bias else None
    return hidden, weight, b, torch.randint(0, v, (n,), generator=g)


def grads(fn, hidden, weight, bias, targets, upstream):  # noqa: ANN001, ANN201
    logps, collision = fn(hidden, weight, bias, targets)
    params = [hidden, weight] + ([bias] if bias is not None else [])
    return logps.detach(), collision.detach(), torch.autograd.grad((logps * upstream).sum(), params)


@pytest.mark.parametrize(
    ("dtype", "tol"), [(torch.float64, 1e-12), (torch.float32, 2e-5), (torch.bfloat16, 3e-2)], ids=str
)
@pytest.mark.parametrize("bias", [True, False])
def test_values_and_gradients_match_autograd_through_the_whole_logits(dtype: torch.dtype, tol: float, bias: bool):
    hidden, weight, b, targets = inputs(dtype, bias=bias)
    upstream = torch.randn(targets.shape[0], generator=torch.Generator().manual_seed(1))
    expected = grads(reference, hidden, weight, b, targets, upstream)
    # chunks of 5 rows: the last chunk is partial (37 rows)
    chunked = grads(
        lambda *a: chunked_token_scores(*a, collision=True, chunk_rows=5), hidden, weight, b, targets, upstream
    )
    scale = 1.0 if dtype == torch.float64 else 1e-6  # float64: relative to ulp; lower precisions: absolute
    for got, want in zip([chunked[0], chunked[1], *chunked[2]], [expected[0], expected[1], *expected[2]], strict=True):
        assert got.dtype == want.dtype and got.shape == want.shape
        err = (got.double() - want.double()).abs().max().item()
        assert err <= tol * max(scale, want.double().abs().max().item()), (dtype, err)


def test_the_collision_term_carries_no_gradient_and_can_be_left_out() -> None:
    hidden, weight, b, targets = inputs(torch.float32)
    logps, collision = chunked_token_scores(hidden, weight, b, targets, collision=True)
    assert logps.requires_grad and not collision.requires_grad
    assert chunked_token_scores(hidden, weight, b, targets)[1] is None


def test_autocast_computes_the_logits_in_its_dtype_as_the_plain_head_does() -> None:
    hidden, weight, b, targets = inputs(torch.float32, v=50)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        plain = token_scores(torch.nn.functional.linear(hidden, weight, b), targets)[0]
        chunked = chunked_token_scores(hidden, weight, b, targets, chunk_rows=4)[0]
    assert torch.allclose(chunked, plain, atol=1e-6)
    assert not torch.allclose(chunked, chunked_token_scores(hidden, weight, b, targets)[0], atol=1e-4)


def model_grads(model: torch.nn.Module, batch: dict, head, collision: bool):  # noqa: ANN001, ANN201
    model.zero_grad()
    scores = batch_token_scores(model, batch, collision=collision, head=head)
    (scores.sums(batch) * torch.linspace(-1, 1, batch["counts"].shape[0])).sum().backward()
    got = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return scores.logps.detach(), scores.collision, got


@pytest.mark.parametrize("layout", [SharedPrompt(), Packed(token_budget=128)], ids=repr)
def test_chunked_head_gives_the_logits_head_logps_collision_and_gradients(layout) -> None:  # noqa: ANN001
    from tests.test_layouts import llama, pairs

    model = llama().float().train()  # tied embeddings: the head's gradient adds to the input embedding's
    batch = layout.collate(pairs(5), pad_token_id=0)
    want = model_grads(model, batch, LogitsHead(), collision=True)
    got = model_grads(model, batch, ChunkedHead(chunk_rows=7), collision=True)
    assert torch.allclose(got[0], want[0], atol=1e-5)
    assert torch.allclose(got[1], want[1], atol=1e-5)
    assert got[2].keys() == want[2].keys() and "model.embed_tokens.weight" in got[2]
    for name in got[2]:
        assert torch.allclose(got[2][name], want[2][name], atol=1e-6, rtol=1e-4), name


def test_a_lora_head_and_a_softcapping_model_fall_back_to_the_whole_logits() -> None:
    from peft import LoraConfig, get_peft_model

    from tests.test_layouts import pairs

    batch = SharedPrompt().collate(pairs(3), pad_token_id=0)
    lora = get_peft_model(load_causal_lm("embedded:neox-tiny"), LoraConfig(r=2, target_modules=["lm_head"]))
    assert torch.allclose(
        batch_token_scores(lora, batch, head=ChunkedHead()).logps, batch_token_scores(lora, batch).logps, atol=1e-6
    )
    torch.manual_seed(0)
    config = Gemma2Config(
        vocab_size=151, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, head_dim=16, final_logit_softcapping=2.0, attn_implementation="eager",
    )  # fmt: skip
    gemma = AutoModelForCausalLM.from_config(config)
    batch = Concatenated().collate(pairs(3), pad_token_id=0)  # Gemma-2's capped attention is eager: no 4-D masks
    head = ChunkedHead()
    got = batch_token_scores(gemma, batch, head=head).logps
    assert torch.allclose(got, batch_token_scores(gemma, batch, head=LogitsHead()).logps, atol=1e-6)
    assert gemma in head._transforming  # seen once, then scored with the whole logits straight away


@pytest.mark.slow  # bitsandbytes' 4-bit CPU kernels: about 10 s
def test_a_4bit_model_keeps_a_plain_head_which_the_chunked_head_scores() -> None:
    pytest.importorskip("bitsandbytes")
    from lit_daa.quantization import FourBit
    from tests.test_layouts import pairs

    model = load_causal_lm("embedded:neox-tiny", quantization=FourBit(compute_dtype="float32"))
    assert type(model.get_output_embeddings()) is torch.nn.Linear  # transformers never quantizes the output head
    batch = SharedPrompt().collate(pairs(3), pad_token_id=0)
    with torch.no_grad():
        got = batch_token_scores(model, batch, head=ChunkedHead()).logps
        want = batch_token_scores(model, batch, head=LogitsHead()).logps
    assert torch.allclose(got, want, atol=1e-5)
