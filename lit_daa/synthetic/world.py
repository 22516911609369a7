"""The embedded synthetic preference world: a vocabulary of topics, a known gold reward, preference pairs.

Prompts name a topic and quote a few of its words::

    prompt   "topic music : music_3 music_9 . answer :"
    response " music_1 the music_4 food_2 very music_0"

Gold reward (documented, so learning can be checked)::

    r(x, y) = relevance_weight * (#on-topic words - #off-topic words)
              - length_weight * max(0, target_length - len(y))          (too short)
              - overlength_weight * max(0, len(y) - target_length)      (too long)

With the defaults of the over-optimization world (docs/world.md), "human" answers are never longer than
`target_length`, so preference data drawn near them says "longer is better" and never shows the over-length
penalty: finite data under-determines the gold reward the way human data does.

Filler words ("the", "very", ...) count as neither on- nor off-topic. Preference labels are drawn by
Bradley-Terry, P(y1 preferred) = sigmoid(bt_scale * (r(x, y1) - r(x, y2))); pairs with equal gold reward are
redrawn, so every kept pair carries information.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

TOPICS = ("sports", "music", "food", "travel", "science", "games", "weather", "money")
FILLERS = ("the", "a", "and", "very", "some", "really", "of", "it")
MARKERS = ("topic", ":", ".", "answer")
SPECIALS = ("<pad>", "<unk>", "<eos>")


def vocabulary(words_per_topic: int = 16) -> list[str]:
    """Every word of the world, specials first (ids 0, 1, 2 = pad, unk, eos)."""
    topic_words = [f"{t}_{i}" for t in TOPICS for i in range(words_per_topic)]
    return [*SPECIALS, *MARKERS, *TOPICS, *FILLERS, *topic_words]


@dataclass
class GoldReward:
    """The world's true reward r(x, y) on (prompt, response) text; see the module docstring.

    Args:
        relevance_weight: weight of (#on-topic - #off-topic) words.
        length_weight: penalty per word below `target_length` (and above it, unless `overlength_weight` is set).
        target_length: the response length, in words, the gold reward likes best.
        overlength_weight: penalty per word above `target_length`; None: the same as `length_weight`.
    """

    relevance_weight: float = 1.0
    length_weight: float = 0.0
    target_length: int = 6
    overlength_weight: float | None = None

    def __call__(self, prompt: str, response: str) -> float:
        parts = self.breakdown(prompt, response)
        return parts["relevance"] - parts["short_penalty"] - parts["long_penalty"]

    def breakdown(self, prompt: str, response: str) -> dict[str, float]:
        """The reward's three terms: r = relevance - short_penalty - long_penalty (penalties are >= 0)."""
        topic = topic_of(prompt)
        words = response.split()
        on = sum(w.startswith(topic + "_") for w in words)
        off = sum("_" in w and not w.startswith(topic + "_") for w in words)
        over = self.length_weight if self.overlength_weight is None else self.overlength_weight
        n = len(words)
        return {
            "relevance": float(self.relevance_weight * (on - off)),
            "short_penalty": float(self.length_weight * max(0, self.target_length - n)),
            "long_penalty": float(over * max(0, n - self.target_length)),
        }


def topic_of(prompt: str) -> str:
    """The topic named by a prompt of this world ("topic music : ..." -> "music")."""
    parts = prompt.split()
    if len(parts) < 2 or parts[0] != "topic" or parts[1] not in TOPICS:
        raise ValueError(f"not a prompt of the synthetic world: {prompt!r}")
    return parts[1]


@dataclass
class SyntheticWorld:
    """Draws prompts, responses and Bradley-Terry-labelled preference pairs.

    Args:
        words_per_topic: topic vocabulary size per topic.
        prompt_words: topic words quoted in each prompt.
        min_length / max_length: response length range in words (uniform).
        bt_scale: Bradley-Terry inverse temperature on gold-reward differences.
        gold: the gold reward.
        human_on_topic: probability that a word of a human answer is on-topic.
        human_off_topic: probability that it is off-topic (the rest is filler).
    """

    words_per_topic: int = 16
    prompt_words: int = 3
    min_length: int = 3
    max_length: int = 10
    bt_scale: float = 3.0
    gold: GoldReward | None = None
    human_on_topic: float = 0.6
    human_off_topic: float = 0.1

    def __post_init__(self) -> None:
        self.gold = self.gold or GoldReward()

    def prompt(self, rng: random.Random) -> str:
        topic = rng.choice(TOPICS)
        quoted = " ".join(f"{topic}_{rng.randrange(self.words_per_topic)}" for _ in range(self.prompt_words))
        return f"topic {topic} : {quoted} . answer :"

    def words(self, topic: str, length: int, p_on: float, p_off: float, rng: random.Random) -> str:
        """An answer of `length` words: each on-topic with probability p_on, off-topic with p_off, else filler."""
        words = []
        for _ in range(length):
            u = rng.random()
            if u < p_on:
                words.append(f"{topic}_{rng.randrange(self.words_per_topic)}")
            elif u < p_on + p_off:
                other = rng.choice([t for t in TOPICS if t != topic])
                words.append(f"{other}_{rng.randrange(self.words_per_topic)}")
            else:
                words.append(rng.choice(FILLERS))
        return " " + " ".join(words)

    def response(self, prompt: str, rng: random.Random) -> str:
        """A random response whose share of on-topic words is itself random, so quality varies widely."""
        p_on = rng.random()
        p_off = rng.random() * (1.0 - p_on)
        return self.words(topic_of(prompt), rng.randint(self.min_length, self.max_length), p_on, p_off, rng)

    def human_response(self, prompt: str, rng: random.Random) -> str:
        """A "human" answer: mostly on-topic words, some filler, a few off-topic slips; length uniform in
        [min_length, max_length]. SFT data and the evaluation references are drawn from this distribution."""
        length = rng.randint(self.min_length, self.max_length)
        return self.words(topic_of(prompt), length, self.human_on_topic, self.human_off_topic, rng)

    def demonstrations(self, n: int, seed: int) -> list[dict[str, str]]:
        """n SFT rows {"prompt", "chosen", "rejected"}: chosen is a human answer; rejected is a second human answer
        to the same prompt (ignored by the SFT objective; present so the rows are ordinary preference rows)."""
        rng = random.Random(seed)
        rows: list[dict[str, str]] = []
        while len(rows) < n:
            prompt = self.prompt(rng)
            first, second = self.human_response(prompt, rng), self.human_response(prompt, rng)
            if first != second:
                rows.append({"prompt": prompt, "chosen": first, "rejected": second})
        return rows

    def eval_set(self, n: int, seed: int) -> list[dict[str, str]]:
        """n evaluation rows {"prompt", "reference"}: held-out prompts, each with one human reference answer."""
        rng = random.Random(seed)
        out = []
        for _ in range(n):
            prompt = self.prompt(rng)
            out.append({"prompt": prompt, "reference": self.human_response(prompt, rng)})
        return out

    def label(
        self, prompt: str, first: str, second: str, rng: random.Random, noiseless: bool = False
    ) -> tuple[str, str] | None:
        """(chosen, rejected) drawn by Bradley-Terry on the gold reward; None for a tie in gold reward.

        noiseless: the answer with the higher gold reward is always chosen (the limit bt_scale -> infinity).
        """
        gap = self.gold(prompt, first) - self.gold(prompt, second)
        if gap == 0:
            return None
        if noiseless:
            return (first, second) if gap > 0 else (second, first)
        p_first = 0.5 * (1.0 + math.tanh(0.5 * self.bt_scale * gap))  # sigmoid, without overflow for long answers
        return (first, second) if rng.random() < p_first else (second, first)

    def label_pairs(self, prompts: list[str], firsts: list[str], seconds: list[str], seed: int) -> list[dict[str, str]]:
        """Label given response pairs by Bradley-Terry on the gold reward; pairs with an empty response, identical
        responses or tied gold rewards are dropped (a preference row needs two different, non-empty answers)."""
        rng = random.Random(seed)
        rows = []
        for prompt, first, second in zip(prompts, firsts, seconds, strict=True):
            a, b = first.split(), second.split()
            labelled = None if (not a or not b or a == b) else self.label(prompt, first, second, rng)
            if labelled is not None:
                rows.append({"prompt": prompt, "chosen": labelled[0], "rejected": labelled[1]})
        return rows

    def data_response(self, prompt: str, rng: random.Random, max_length: int | None = None) -> str:
        """An answer of the fixed data policy that made the shared preference set (docs/world.md): human-like, but
        each answer draws its own on-topic rate in [0.2, 0.95] and off-topic rate in [0, 0.3] x the rest, so quality
        varies from pair to pair; length is uniform in [min_length, max_length] (default: the human maximum)."""
        topic = topic_of(prompt)
        p_on = rng.uniform(0.2, 0.95)
        p_off = rng.uniform(0.0, 0.3) * (1.0 - p_on)
        return self.words(topic, rng.randint(self.min_length, max_length or self.max_length), p_on, p_off, rng)

    def data_pairs(
        self, n: int, seed: int, max_length: int | None = None, noiseless: bool = False
    ) -> list[dict[str, str]]:
        """n preference rows of two `data_response` answers per prompt, labelled by `label`; identical answers and
        gold ties are redrawn. The rows depend on the seed and these options only, never on a model."""
        rng = random.Random(seed)
        rows: list[dict[str, str]] = []
        while len(rows) < n:
            prompt = self.prompt(rng)
            first, second = self.data_response(prompt, rng, max_length), self.data_response(prompt, rng, max_length)
            labelled = None if first == second else self.label(prompt, first, second, rng, noiseless)
            if labelled is not None:
                rows.append({"prompt": prompt, "chosen": labelled[0], "rejected": labelled[1]})
        return rows

    def pairs(self, n: int, seed: int) -> list[dict[str, str]]:
        """n rows {"prompt", "chosen", "rejected"} with responses drawn by `response`, reproducible by seed."""
        rng = random.Random(seed)
        rows: list[dict[str, str]] = []
        while len(rows) < n:
            prompt = self.prompt(rng)
            labelled = self.label(prompt, self.response(prompt, rng), self.response(prompt, rng), rng)
            if labelled is not None:
                rows.append({"prompt": prompt, "chosen": labelled[0], "rejected": labelled[1]})
        return rows
