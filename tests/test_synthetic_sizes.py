"""The embedded model sizes: their parameter counts (as documented in lit_daa/synthetic/model.py and docs/world.md),
a span of more than 30x, and one shared vocabulary and tokenizer."""

from __future__ import annotations

from transformers import AutoTokenizer, GPTNeoXForCausalLM

from lit_daa.models import resolve_model
from lit_daa.synthetic.model import EMBEDDED_MODELS
from lit_daa.synthetic.world import vocabulary

PARAMS = {
    "embedded:neox-tiny": 119_424,
    "embedded:neox-mini": 633_728,
    "embedded:neox-base": 1_285_760,
    "embedded:neox-small": 1_837_824,
    "embedded:neox-large": 4_026_624,
}


def test_sizes_span_more_than_30x_over_one_vocabulary() -> None:
    assert set(EMBEDDED_MODELS) == set(PARAMS)
    counts, vocabularies = {}, set()
    for name in PARAMS:
        folder = resolve_model(name, "model.policy")
        model = GPTNeoXForCausalLM.from_pretrained(folder)
        counts[name] = sum(p.numel() for p in model.parameters())
        vocabularies.add(
            (model.config.vocab_size, tuple(sorted(AutoTokenizer.from_pretrained(folder).get_vocab().items())))
        )
    assert counts == PARAMS
    assert counts["embedded:neox-large"] / counts["embedded:neox-tiny"] >= 30  # 33.7x
    assert len(vocabularies) == 1 and next(iter(vocabularies))[0] == len(vocabulary()) == 151
