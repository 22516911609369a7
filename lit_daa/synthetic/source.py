"""The synthetic world's preference pairs as a data source (prompt/chosen/rejected strings, generated in memory)."""

from __future__ import annotations

from datasets import Dataset

from lit_daa.data.sources import PreferenceSource
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
