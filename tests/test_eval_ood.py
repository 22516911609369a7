"""The out-of-data columns of an evaluation (ood_mass, ood_token_share) against a brute-force computation, the
in-data token set of a preference source, and the options that name it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, GPTNeoXForCausalLM

from lit_daa.data.sources import FileSource
from lit_daa.errors import InputError
from lit_daa.evaluation import evaluate_policy, sample
from lit_daa.evaluation.cli import main
from lit_daa.evaluation.kl import _logps, out_of_data_mask, score_samples
from lit_daa.evaluation.ood import answer_tokens, training_answer_tokens
from lit_daa.evaluation.options import EvaluationOptions
from lit_daa.evaluation.sampling import Samples
from lit_daa.logps import right_pad
from lit_daa.synthetic.model import TinyNeoX
from lit_daa.synthetic.source import SharedPreferencePairs
from lit_daa.synthetic.world import FILLERS, SyntheticWorld, vocabulary


@pytest.fixture(scope="module")
def padded(tmp_path_factory: pytest.TempPathFactory) -> tuple[GPTNeoXForCausalLM, AutoTokenizer]:
    """A tiny random model whose vocabulary is padded to 160 rows past the tokenizer's 151 words."""
    folder = tmp_path_factory.mktemp("padded")
    TinyNeoX(hidden_size=32, num_layers=1, num_heads=4, vocab_size=160, seed=3).build(folder)
    return GPTNeoXForCausalLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)


def brute_force(model: GPTNeoXForCausalLM, samples: Samples, in_data: set[int]) -> tuple[float, float]:
    """(ood_mass, ood_token_share) by one unpadded forward per response position and a full softmax each."""
    vocab = model.config.vocab_size
    mass, outside, tokens = 0.0, 0, 0
    with torch.no_grad():
        for prompt, response in zip(samples.prompt_ids, samples.response_ids, strict=True):
            for t, token in enumerate(response):
                probs = torch.softmax(model(torch.tensor([prompt + response[:t]])).logits[0, -1].double(), dim=-1)
                mass += sum(float(probs[v]) for v in range(vocab) if v not in in_data)
                outside += token not in in_data
                tokens += 1
    return mass / tokens, outside / tokens


def test_ood_columns_equal_a_brute_force_computation(padded: tuple) -> None:
    model, tokenizer = padded
    source = SharedPreferencePairs(num_train=2, num_val=0, seed=4)  # two pairs: a small, partial in-data set
    rows = list(source.train())
    words = {w for r in rows for k in ("chosen", "rejected") for w in r[k].split()}
    by_hand = {tokenizer.convert_tokens_to_ids(w) for w in words} | {tokenizer.eos_token_id, tokenizer.pad_token_id}
    assert training_answer_tokens(source, tokenizer) == by_hand
    world = SyntheticWorld(min_length=2, max_length=8)
    prompts = [row["prompt"] for row in world.eval_set(3, seed=9)]
    options = EvaluationOptions(
        num_prompts=3, max_new_tokens=5, batch_size=2, seed=1, forward_kl=False, training_data=source
    )
    # the reference row's case (policy is reference): the mass still comes from the policy's one scoring pass
    result = evaluate_policy(model, model, tokenizer, prompts, ["x"] * 3, options)
    samples = sample(model, tokenizer, prompts, max_new_tokens=5, batch_size=2, seed=1)  # the samples it drew
    mass, share = brute_force(model, samples, by_hand)
    assert 0.0 < mass < 1.0 and 0.0 < share < 1.0
    assert result.ood_mass == pytest.approx(mass, rel=1e-5)
    assert result.ood_token_share == share  # a count: exact
    row = result.row()
    assert row["ood_mass"] == result.ood_mass and row["ood_token_share"] == share
    # the same set given directly (as a caller with a run's own pairs would) gives the same numbers
    direct = evaluate_policy(model, model, tokenizer, prompts, ["x"] * 3, options, in_data_tokens=by_hand)
    assert (direct.ood_mass, direct.ood_token_share) == (result.ood_mass, result.ood_token_share)
    # without a training set: NaN
    options.training_data = None
    plain = evaluate_policy(model, model, tokenizer, prompts, ["x"] * 3, options)
    assert math.isnan(plain.ood_mass) and math.isnan(plain.ood_token_share)


def test_hand_made_samples_and_unchanged_log_ratios(padded: tuple) -> None:
    model, tokenizer = padded
    ids = tokenizer.convert_tokens_to_ids
    eos = tokenizer.eos_token_id
    prompt = tokenizer("topic music : music_3 . answer :", add_special_tokens=False)["input_ids"]
    in_data = answer_tokens([" music_1 the", " food_2"], tokenizer)
    assert in_data == {ids("music_1"), ids("the"), ids("food_2"), eos, tokenizer.pad_token_id}
    # 6 tokens: "topic" and the padded-vocabulary id 155 are outside the set, EOS is inside -> share 2/6
    responses = [[ids("music_1"), ids("topic"), ids("the"), eos], [155, ids("food_2")]]
    samples = Samples(["a", "b"], [prompt, prompt[2:]], responses, ["", ""], eos)
    other = GPTNeoXForCausalLM(model.config).eval()  # another random model of the same shape, as a reference
    scores = score_samples(model, other, samples, batch_size=1, in_data=in_data)
    assert scores.tokens.tolist() == [4, 2] and scores.ood_tokens.tolist() == [1, 1]
    mass, share = brute_force(model, samples, set(in_data))
    assert share == 2 / 6
    assert float(scores.ood_mass.sum()) / 6 == pytest.approx(mass, rel=1e-5)
    # the log-ratios are those of the plain scoring path (the same positions and log-softmax)
    batch = right_pad(list(zip(samples.prompt_ids, samples.response_ids, strict=True)))
    with torch.no_grad():
        expected = _logps(model, batch) - _logps(other, batch)
    assert torch.allclose(scores.logratios, expected, atol=1e-5)
    # every token in-data: no mass outside, exactly
    everything = score_samples(model, model, samples, in_data=range(model.config.vocab_size))
    assert everything.ood_mass.tolist() == [0.0, 0.0] and everything.logratios.tolist() == [0.0, 0.0]
    assert out_of_data_mask([0, 2, 500], 4).tolist() == [False, True, False, True]


def test_the_shared_sets_in_data_tokens_do_not_depend_on_seed_or_control(tokenizer_dir: str) -> None:
    """Every lab run's pairs use every topic word and filler, so one `training_data` serves all its seeds and
    controls. 800 pairs suffice; more pairs of the same seed start with the same 800 (one random stream), so the
    lab's 3200 and 12800 cover the same set."""
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    words = [w for w in vocabulary() if "_" in w or w in FILLERS]
    expected = set(tokenizer.convert_tokens_to_ids(words)) | {tokenizer.eos_token_id, tokenizer.pad_token_id}
    assert len(expected) == 8 * 16 + 8 + 2
    for options in ({"seed": 0}, {"seed": 1}, {"seed": 2}, {"data_max_length": 14}, {"noiseless": True}):
        source = SharedPreferencePairs(num_train=800, num_val=0, **options)
        assert training_answer_tokens(source, tokenizer) == expected, options
    # outside: <unk>, the four prompt markers and the eight topic names
    outside = set(range(len(tokenizer))) - expected
    assert {tokenizer.convert_ids_to_tokens(i) for i in outside} == {
        "<unk>", "topic", ":", ".", "answer", "sports", "music", "food", "travel", "science", "games", "weather",
        "money",
    }  # fmt: skip


def test_cli_names_the_training_data(tmp_path: Path, tokenizer_dir: str) -> None:
    argv = [
        "--policy", "embedded:neox-tiny", "--reference", "embedded:neox-tiny",
        "--num_prompts", "4", "--max_new_tokens", "4", "--batch_size", "4", "--forward_kl", "false",
        "--training_data", "lit_daa.synthetic.source.SharedPreferencePairs",
        "--training_data.num_train", "300", "--training_data.num_val", "0",
        "--out", str(tmp_path),
    ]  # fmt: skip
    assert main(argv) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert 0.0 < metrics["ood_mass"] < 1.0 and 0.0 <= metrics["ood_token_share"] <= 1.0
    missing = str(tmp_path / "missing.jsonl")
    with pytest.raises(InputError, match="evaluation training_data: .*missing.jsonl"):
        training_answer_tokens(FileSource(missing), AutoTokenizer.from_pretrained(tokenizer_dir))
