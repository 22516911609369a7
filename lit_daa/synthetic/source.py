"""The synthetic world's preference pairs as a data source (prompt/chosen/rejected strings, generated in memory)."""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path

import torch
from datasets import Dataset

from lit_daa.data.sources import PreferenceSource
from lit_daa.errors import InputError
from lit_daa.models import load_causal_lm, load_tokenizer, resolve_model
from lit_daa.synthetic.model import cache_root
from lit_daa.synthetic.world import GoldReward, SyntheticWorld


class SyntheticPreferences(PreferenceSource):
    """Bradley-Terry-labelled pairs from `SyntheticWorld`, whose gold reward is known (see synthetic/world.py).

    Train and validation rows are drawn with different seeds (`seed` and `seed + 1`), so they are independent
    draws from the same world.

    Args:
        num_train: training pairs.
        num_val: validation pairs (0: none; the data module then carves them out of the training pairs).
        seed: seed of the training draw; the validation draw uses seed + 1.
        words_per_topic: topic words per topic; the embedded models' tokenizer knows 16 (more become <unk>).
        prompt_words: topic words quoted in each prompt.
        min_length: shortest response, in words.
        max_length: longest response, in words.
        bt_scale: Bradley-Terry inverse temperature on gold-reward differences (higher: less label noise).
        relevance_weight: gold reward per on-topic word minus off-topic word.
        length_weight: gold reward penalty per word of distance from `target_length` (0: length does not matter).
        target_length: the response length, in words, the gold reward likes best.
    """

    name = "synthetic preferences"

    def __init__(
        self,
        num_train: int = 4000,
        num_val: int = 256,
        seed: int = 0,
        words_per_topic: int = 16,
        prompt_words: int = 3,
        min_length: int = 3,
        max_length: int = 10,
        bt_scale: float = 3.0,
        relevance_weight: float = 1.0,
        length_weight: float = 0.0,
        target_length: int = 6,
    ) -> None:
        self.num_train, self.num_val, self.seed = num_train, num_val, seed
        self.world = SyntheticWorld(
            words_per_topic=words_per_topic,
            prompt_words=prompt_words,
            min_length=min_length,
            max_length=max_length,
            bt_scale=bt_scale,
            gold=GoldReward(
                relevance_weight=relevance_weight, length_weight=length_weight, target_length=target_length
            ),
        )

    def train(self) -> Dataset:
        return Dataset.from_list(self.world.pairs(self.num_train, self.seed))

    def validation(self) -> Dataset | None:
        return Dataset.from_list(self.world.pairs(self.num_val, self.seed + 1)) if self.num_val > 0 else None


class HumanDemonstrations(PreferenceSource):
    """SFT data of the over-optimization world: prompts with "human" answers (`SyntheticWorld.human_response`).

    Rows are ordinary preference rows whose `chosen` is a human answer; `rejected` is a second human answer,
    which the SFT objective ignores. See docs/world.md.

    Args:
        num_train: training rows.
        num_val: validation rows (seed + 1).
        seed: seed of the training draw.
        min_length: shortest human answer, in words.
        max_length: longest human answer, in words.
        human_on_topic: probability that a word of a human answer is on-topic.
        human_off_topic: probability that it is off-topic (the rest is filler).
    """

    name = "human demonstrations"

    def __init__(
        self,
        num_train: int = 8000,
        num_val: int = 256,
        seed: int = 0,
        min_length: int = 2,
        max_length: int = 8,
        human_on_topic: float = 0.6,
        human_off_topic: float = 0.1,
    ) -> None:
        self.num_train, self.num_val, self.seed = num_train, num_val, seed
        self.world = SyntheticWorld(
            min_length=min_length, max_length=max_length, human_on_topic=human_on_topic, human_off_topic=human_off_topic
        )

    def train(self) -> Dataset:
        return Dataset.from_list(self.world.demonstrations(self.num_train, self.seed))

    def validation(self) -> Dataset | None:
        return Dataset.from_list(self.world.demonstrations(self.num_val, self.seed + 1)) if self.num_val > 0 else None


class ReferenceSamplePairs(PreferenceSource):
    """Preference pairs of the over-optimization world, made as the paper's were: two samples from the reference
    policy per prompt, labelled by Bradley-Terry on the gold reward (docs/world.md).

    Sampling is ancestral (temperature 1). Pairs with an empty or identical answer or a gold tie are dropped. The
    rows are cached as JSONL under $LIT_DAA_CACHE/pairs, keyed by the reference's weights and every option here,
    so all runs of a sweep that share a reference share one set of pairs.

    Args:
        reference: the model to sample from; None: the run's `model.policy` (the SFT model a DAA run starts from).
        num_train: training pairs.
        num_val: validation pairs (prompts drawn with seed + 1).
        seed: seed of prompts, samples and labels.
        max_new_tokens: most tokens per sampled answer.
        bt_scale: Bradley-Terry inverse temperature on gold-reward differences.
        relevance_weight: gold reward per on-topic word minus off-topic word.
        length_weight: gold penalty per word below target_length.
        target_length: the answer length the gold reward likes best, in words.
        overlength_weight: gold penalty per word above target_length.
        batch_size: prompts sampled at once.
    """

    name = "reference-sample pairs"

    def __init__(
        self,
        reference: str | None = None,
        num_train: int = 4000,
        num_val: int = 256,
        seed: int = 0,
        max_new_tokens: int = 24,
        bt_scale: float = 1.0,
        relevance_weight: float = 1.0,
        length_weight: float = 1.0,
        target_length: int = 8,
        overlength_weight: float = 2.0,
        batch_size: int = 256,
    ) -> None:
        self.reference = reference
        self.num_train, self.num_val, self.seed = num_train, num_val, seed
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.world = SyntheticWorld(
            bt_scale=bt_scale,
            gold=GoldReward(relevance_weight, length_weight, target_length, overlength_weight),
        )
        self.options = dict(
            num_train=num_train, num_val=num_val, seed=seed, max_new_tokens=max_new_tokens, bt_scale=bt_scale,
            gold=[relevance_weight, length_weight, target_length, overlength_weight],
        )  # fmt: skip

    def attach(self, model_name: str) -> None:
        if self.reference is None:
            self.reference = model_name

    def train(self) -> Dataset:
        return Dataset.from_list(self._rows(self.num_train, self.seed))

    def validation(self) -> Dataset | None:
        return Dataset.from_list(self._rows(self.num_val, self.seed + 1)) if self.num_val > 0 else None

    def _rows(self, n: int, seed: int) -> list[dict[str, str]]:
        if self.reference is None:
            raise InputError("data.source ReferenceSamplePairs needs a reference model (set its reference option)")
        folder = Path(resolve_model(self.reference, "data.source.reference"))
        weights = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
        stamp = [(w.name, w.stat().st_size, w.stat().st_mtime_ns) for w in weights]
        key = hashlib.sha256(json.dumps([str(folder.resolve()), stamp, self.options, n, seed]).encode()).hexdigest()
        path = cache_root() / "pairs" / f"{key[:24]}.jsonl"
        if path.exists():
            return [json.loads(line) for line in path.read_text().splitlines()]
        rows = self._draw(str(folder), n, seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
        os.replace(tmp, path)
        return rows

    def _draw(self, folder: str, n: int, seed: int) -> list[dict[str, str]]:
        from lit_daa.evaluation.sampling import sample  # sampling needs the evaluation extra's code only here

        model = load_causal_lm(folder, option="data.source.reference").eval()
        tokenizer = load_tokenizer(folder, option="data.source.reference")
        rng = random.Random(seed)
        rows: list[dict[str, str]] = []
        draw = 0
        while len(rows) < n:
            prompts = [self.world.prompt(rng) for _ in range(int((n - len(rows)) * 1.25) + 8)]
            with torch.no_grad():
                first = sample(
                    model,
                    tokenizer,
                    prompts,
                    self.max_new_tokens,
                    batch_size=self.batch_size,
                    seed=seed * 7919 + 2 * draw,
                )
                second = sample(
                    model,
                    tokenizer,
                    prompts,
                    self.max_new_tokens,
                    batch_size=self.batch_size,
                    seed=seed * 7919 + 2 * draw + 1,
                )
            rows += self.world.label_pairs(
                prompts, [" " + r for r in first.responses], [" " + r for r in second.responses], seed + draw
            )
            draw += 1
        return rows[:n]


_SHARED_ROWS: dict[tuple, Dataset] = {}


class SharedPreferencePairs(PreferenceSource):
    """The over-optimization world's preference set, shared by every model size as the paper's was: pairs of
    answers from one fixed data policy (`SyntheticWorld.data_response`), labelled by the gold reward.

    The rows depend only on these options, never on the model being trained, so every size of a sweep trains on
    the same pairs. By default the data policy answers in the human length range, never past `target_length`,
    so the data cannot show the over-length penalty (the world's planted blind spot, docs/world.md). The three
    mechanism controls of the lab are options here: `data_max_length` past `target_length` covers the over-length
    region, `noiseless` labels every pair by the higher gold reward, and `num_train` sets how many pairs there are.

    Args:
        num_train: training pairs.
        num_val: validation pairs (drawn with seed + 1).
        seed: seed of prompts, answers and labels.
        min_length: shortest answer, in words.
        max_length: longest human answer, in words (the human range the data policy answers in by default).
        data_max_length: longest data-policy answer; None: `max_length`.
        bt_scale: Bradley-Terry inverse temperature on gold-reward differences.
        noiseless: choose the higher-gold answer of every pair (no label noise).
        relevance_weight: gold reward per on-topic word minus off-topic word.
        length_weight: gold penalty per word below target_length.
        target_length: the answer length the gold reward likes best, in words.
        overlength_weight: gold penalty per word above target_length.
    """

    name = "shared preference pairs"

    def __init__(
        self,
        num_train: int = 3200,
        num_val: int = 256,
        seed: int = 0,
        min_length: int = 2,
        max_length: int = 8,
        data_max_length: int | None = None,
        bt_scale: float = 1.0,
        noiseless: bool = False,
        relevance_weight: float = 1.0,
        length_weight: float = 1.0,
        target_length: int = 8,
        overlength_weight: float = 2.0,
    ) -> None:
        if data_max_length is not None and data_max_length < min_length:
            raise InputError(
                f"data.source SharedPreferencePairs: data_max_length {data_max_length} is below min_length {min_length}"
            )
        self.num_train, self.num_val, self.seed = num_train, num_val, seed
        self.data_max_length, self.noiseless = data_max_length, noiseless
        self.world = SyntheticWorld(
            min_length=min_length,
            max_length=max_length,
            bt_scale=bt_scale,
            gold=GoldReward(relevance_weight, length_weight, target_length, overlength_weight),
        )

    def _rows(self, n: int, seed: int) -> Dataset:
        # A sweep run reads the same rows for its fit, its held-out metrics and its out-of-data token set; the rows
        # depend on these options only, so one process draws them once.
        key = (repr(self.world), n, seed, self.data_max_length, self.noiseless)
        if key not in _SHARED_ROWS:
            if len(_SHARED_ROWS) > 64:
                _SHARED_ROWS.clear()
            _SHARED_ROWS[key] = Dataset.from_list(self.world.data_pairs(n, seed, self.data_max_length, self.noiseless))
        return _SHARED_ROWS[key]

    def train(self) -> Dataset:
        return self._rows(self.num_train, self.seed)

    def validation(self) -> Dataset | None:
        return self._rows(self.num_val, self.seed + 1) if self.num_val > 0 else None
