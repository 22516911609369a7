"""Segment attention (`--model.attn_implementation segments`): packed and shared-prompt rows scored segment by
segment, with no dense mask, give the concatenated layout's log-probs, losses and gradients on GPT-NeoX, Llama,
Qwen2 and Mistral shaped tiny models; without its `Segments` it is plain SDPA."""

from __future__ import annotations

import pytest
import torch

from lit_daa import segment_attention
from lit_daa.layouts import Concatenated, Packed, SharedPrompt
from lit_daa.layouts.masks import attention_inputs
from lit_daa.logps import batch_logps
from lit_daa.objectives import DPO, PairLogps
from lit_daa.segment_attention import Segments
from tests.test_layouts import MODELS, pairs


def run(model: torch.nn.Module, layout, rows: list[dict], ref: torch.Tensor):  # noqa: ANN001, ANN201
    model.zero_grad()
    sums, counts = batch_logps(model, layout.collate(rows, pad_token_id=0))
    losses = DPO(0.5)(PairLogps.from_rows(sums, counts, ref)).losses
    losses.sum().backward()
    return (
        sums.detach(),
        losses.detach(),
        {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None},
    )


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("layout", [Packed(token_budget=100), SharedPrompt()], ids=repr)
def test_segment_attention_gives_the_concatenated_logps_losses_and_gradients(name: str, layout, monkeypatch) -> None:  # noqa: ANN001
    model = MODELS[name]().float().train()
    rows = pairs(6, seed=2)
    ref = torch.randn(2 * len(rows)) - 30.0
    base = run(model, Concatenated(), rows, ref)  # sdpa, a 2-D padding mask
    calls, real = [], segment_attention._segment_sdpa
    monkeypatch.setattr(segment_attention, "_segment_sdpa", lambda *a: calls.append(1) or real(*a))
    model.config._attn_implementation = segment_attention.NAME
    got = run(model, layout, rows, ref)
    assert calls  # the rows went segment by segment, not through SDPA with a mask
    assert torch.allclose(got[0], base[0], atol=1e-5, rtol=2e-7), (got[0] - base[0]).abs().max()
    assert torch.allclose(got[1], base[1], atol=1e-5, rtol=1e-6)  # losses up to ~60: a float32 ulp is 4e-6
    assert got[2].keys() == base[2].keys()
    for key in got[2]:
        assert torch.allclose(got[2][key], base[2][key], atol=1e-5, rtol=1e-4), key


def test_no_mask_reaches_the_model_and_the_groups_are_read_from_the_ids() -> None:
    model = MODELS["llama"]()
    model.config._attn_implementation = segment_attention.NAME
    rows = [
        {"prompt_ids": [5, 6, 7], "chosen_ids": [8, 2], "rejected_ids": [9, 10, 2]},
        {"prompt_ids": [11], "chosen_ids": [2], "rejected_ids": [12, 2]},
    ]
    inputs = attention_inputs(model, Packed(token_budget=32, pad_to_multiple_of=16).collate(rows, 0))
    assert inputs["attention_mask"].dim() == 2 and bool(inputs["attention_mask"].all())
    groups = inputs[segment_attention.KWARG].groups()
    assert [(g.prompt, g.responses) for g in groups[0]] == [((0, 3), [(3, 5), (5, 8)]), ((8, 9), [(9, 10), (10, 12)])]


def test_without_segments_it_is_sdpa() -> None:
    model = MODELS["qwen2"]().eval()
    batch = Concatenated().collate(pairs(3), 0)
    with torch.no_grad():
        sdpa, _ = batch_logps(model, batch)
        model.config._attn_implementation = segment_attention.NAME
        segments, _ = batch_logps(model, batch)
    assert torch.allclose(segments, sdpa, atol=1e-6)


def test_segments_are_built_once_per_forward() -> None:
    batch = SharedPrompt().collate(pairs(2), 0)
    segments = Segments(batch["doc_ids"], batch["segments"])
    assert segments.groups() is segments.groups()


@pytest.mark.slow  # FlexAttention compiles its kernel on the CPU: about 15 s
def test_the_flex_attention_branch_gives_the_same_logps(monkeypatch) -> None:  # noqa: ANN001
    """The CUDA branch (FlexAttention with the segments' block mask), run on the CPU where FlexAttention works."""
    model = MODELS["mistral"]().eval()
    rows = pairs(4, seed=5)
    with torch.no_grad():
        dense, _ = batch_logps(model, Concatenated().collate(rows, 0))
        model.config._attn_implementation = segment_attention.NAME
        monkeypatch.setattr(segment_attention, "FLEX_DEVICES", ("cpu",))
        try:
            flex, _ = batch_logps(model, Packed(token_budget=128).collate(rows, 0))
        except Exception as err:  # noqa: BLE001 - FlexAttention needs a compiler toolchain on some CPUs
            pytest.skip(f"FlexAttention forward is not available here ({type(err).__name__})")
    assert torch.allclose(flex, dense, atol=1e-4), (flex - dense).abs().max()
