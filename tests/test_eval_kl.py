"""Sampling and the sampled KL against the exact KL of the truncated sequence distributions, found by enumeration.

Two random GPT-NeoX models over a 5-token vocabulary (EOS + 4 words) and max_new_tokens = 3: a response is
[EOS], [w, EOS], [w, w, EOS] or [w, w, w] (cut), 1 + 4 + 16 + 64 = 85 sequences per prompt. Their exact
probabilities come from the next-token distributions at the 21 response prefixes, one unpadded forward each: an
independent path from the batched, padded one of `sample` + `sequence_logratios`.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, PreTrainedTokenizerFast

from lit_daa.evaluation import KLEstimate, estimate_kl, sample, sequence_logratios

EOS, WORDS, MAX_NEW = 0, (1, 2, 3, 4), 3
PROMPTS = ["a", "b c", "d a b c"]  # different lengths, so left padding is exercised in every batch


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    core = Tokenizer(models.WordLevel(vocab={"<eos>": 0, "a": 1, "b": 2, "c": 3, "d": 4}, unk_token="<eos>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    # pad = EOS as in Pythia: the sampler must cut at the first EOS, not trust padding
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<eos>", pad_token="<eos>")


def tiny_model(seed: int) -> GPTNeoXForCausalLM:
    config = GPTNeoXConfig(
        vocab_size=5,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        initializer_range=0.6,  # far from uniform next-token distributions, so the KL is of order 1 nat
        bos_token_id=EOS,
        eos_token_id=EOS,
        pad_token_id=EOS,
    )
    torch.manual_seed(seed)
    return GPTNeoXForCausalLM(config).eval()


def responses() -> list[tuple[int, ...]]:
    """Every response of at most MAX_NEW tokens: stopped by EOS, or cut at MAX_NEW tokens without one."""
    stopped = [(*words, EOS) for n in range(MAX_NEW) for words in itertools.product(WORDS, repeat=n)]
    cut = list(itertools.product(WORDS, repeat=MAX_NEW))
    return stopped + cut


def exact_logps(model: GPTNeoXForCausalLM, prompt: list[int]) -> dict[tuple[int, ...], float]:
    """log p(response | prompt) of every response, from one forward per response prefix."""
    with torch.no_grad():
        next_logps = {
            prefix: torch.log_softmax(model(torch.tensor([prompt + list(prefix)])).logits[0, -1].double(), -1)
            for n in range(MAX_NEW)
            for prefix in itertools.product(WORDS, repeat=n)
        }
    return {r: sum(next_logps[r[:t]][r[t]].item() for t in range(len(r))) for r in responses()}


def exact_kl(p: dict[tuple[int, ...], float], q: dict[tuple[int, ...], float]) -> float:
    return sum(math.exp(lp) * (lp - q[r]) for r, lp in p.items())


@pytest.fixture(scope="module")
def world() -> dict:
    tokenizer = tiny_tokenizer()
    policy, reference = tiny_model(1), tiny_model(2)
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in PROMPTS]
    return {
        "tokenizer": tokenizer,
        "policy": policy,
        "reference": reference,
        "policy_logps": [exact_logps(policy, p) for p in ids],
        "reference_logps": [exact_logps(reference, p) for p in ids],
    }


def test_enumeration_covers_every_response(world: dict) -> None:
    assert len(responses()) == len(set(responses())) == 1 + 4 + 16 + 64
    for key in ("policy_logps", "reference_logps"):
        for logps in world[key]:
            assert sum(math.exp(lp) for lp in logps.values()) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("direction", ["reverse", "forward"])
def test_sampled_kl_matches_exact_kl(world: dict, direction: str) -> None:
    # reverse: KL(pi || pi_ref) on policy samples; forward: KL(pi_ref || pi) on reference samples, roles swapped
    sampler, other = ("policy", "reference") if direction == "reverse" else ("reference", "policy")
    n_per_prompt = 1400
    prompts = [p for p in PROMPTS for _ in range(n_per_prompt)]
    samples = sample(world[sampler], world["tokenizer"], prompts, max_new_tokens=MAX_NEW, batch_size=700, seed=3)
    estimate = estimate_kl(world[sampler], world[other], samples, batch_size=700)
    exact = sum(exact_kl(p, q) for p, q in zip(world[f"{sampler}_logps"], world[f"{other}_logps"], strict=True)) / len(
        PROMPTS
    )
    assert exact > 0.2, "the two models should differ enough for the test to mean something"
    assert estimate.n == len(prompts)
    assert abs(estimate.mean - exact) < 4 * estimate.stderr, (estimate, exact)
    assert estimate.stderr < 0.1 * exact

    # the samples themselves follow the model: first-token frequencies within 4.5 standard errors of the exact ones
    for k, prompt_logps in enumerate(world[f"{sampler}_logps"]):
        firsts = [r[0] for r in samples.response_ids[k * n_per_prompt : (k + 1) * n_per_prompt]]
        for token in (EOS, *WORDS):
            p = sum(math.exp(lp) for r, lp in prompt_logps.items() if r[0] == token)
            freq = firsts.count(token) / n_per_prompt
            assert abs(freq - p) < 4.5 * math.sqrt(p * (1 - p) / n_per_prompt) + 1e-9, (prompt_logps, token)


def test_logratios_match_exact_log_probabilities(world: dict) -> None:
    samples = sample(world["policy"], world["tokenizer"], PROMPTS * 20, max_new_tokens=MAX_NEW, batch_size=16, seed=0)
    logratios = sequence_logratios(world["policy"], world["reference"], samples, batch_size=7)
    for i, response in enumerate(samples.response_ids):
        k = i % len(PROMPTS)
        expected = world["policy_logps"][k][tuple(response)] - world["reference_logps"][k][tuple(response)]
        assert logratios[i].item() == pytest.approx(expected, abs=1e-4)


def test_kl_of_a_model_with_itself_is_exactly_zero(world: dict) -> None:
    samples = sample(world["policy"], world["tokenizer"], PROMPTS * 10, max_new_tokens=MAX_NEW, seed=0)
    same = estimate_kl(world["policy"], world["policy"], samples)
    assert same.mean == 0.0 and same.sqrt_kl == 0.0 and same.stderr == 0.0
    copy = tiny_model(1)  # an identical copy scored in a second pass gives exactly 0 too
    assert torch.equal(sequence_logratios(world["policy"], copy, samples), torch.zeros(len(samples)))


def test_samples_stop_at_eos_and_are_reproducible(world: dict) -> None:
    state = torch.random.get_rng_state()
    first = sample(world["policy"], world["tokenizer"], PROMPTS * 8, max_new_tokens=MAX_NEW, batch_size=5, seed=5)
    assert torch.equal(torch.random.get_rng_state(), state), "sampling must leave the caller's RNG alone"
    again = sample(world["policy"], world["tokenizer"], PROMPTS * 8, max_new_tokens=MAX_NEW, batch_size=5, seed=5)
    other = sample(world["policy"], world["tokenizer"], PROMPTS * 8, max_new_tokens=MAX_NEW, batch_size=5, seed=6)
    assert first.response_ids == again.response_ids
    assert first.response_ids != other.response_ids
    for ids, text, length in zip(first.response_ids, first.responses, first.lengths, strict=True):
        assert 1 <= len(ids) == length <= MAX_NEW
        assert EOS not in ids[:-1], "nothing is kept after the first EOS"
        assert len(ids) == MAX_NEW or ids[-1] == EOS, "a response shorter than the limit stopped at EOS"
        assert text == " ".join("-abcd"[t] for t in ids if t != EOS)


def test_kl_estimate_statistics() -> None:
    est = KLEstimate.from_logratios(torch.tensor([1.0, 2.0, 3.0, -2.0]))
    assert est.mean == pytest.approx(1.0)
    assert est.stderr == pytest.approx(math.sqrt(14 / 3) / 2)  # sample variance with ddof=1 is 14/3
    assert est.sqrt_kl == pytest.approx(1.0) and est.n == 4
    assert KLEstimate.from_logratios(torch.tensor([-0.5, -0.1])).sqrt_kl == 0.0
    assert math.isnan(KLEstimate.from_logratios(torch.tensor([0.3])).stderr)
