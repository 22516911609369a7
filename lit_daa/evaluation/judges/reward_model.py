"""A trained reward model as a judge: any Hugging Face sequence-classification checkpoint with one output."""

from __future__ import annotations

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from lit_daa.errors import InputError
from lit_daa.evaluation.inference import inference, model_device
from lit_daa.evaluation.judges.base import ScoringJudge
from lit_daa.models import DTYPES, resolve_model


class RewardModelJudge(ScoringJudge):
    """Scores the text prompt + response with `AutoModelForSequenceClassification` (its single logit is the score).

    The text is tokenized with the checkpoint's own special tokens (a reward model knows its convention) and, when
    longer than `max_length`, cut from the LEFT, so the response - what is being judged - is kept whole.

    Args:
        model: a local folder or hub id of the reward model (with its tokenizer).
        batch_size: texts per forward pass.
        max_length: most tokens per text.
        dtype: float32, bfloat16 or float16.
        device: where to run it ("cpu", "cuda", "cuda:1", ...); None: CUDA when available.
    """

    def __init__(
        self,
        model: str,
        batch_size: int = 16,
        max_length: int = 512,
        dtype: str = "float32",
        device: str | None = None,
    ) -> None:
        if dtype not in DTYPES:
            raise InputError(f"judge dtype must be one of {sorted(DTYPES)}, got '{dtype}'")
        source = resolve_model(model, "judge.model")
        try:
            self.model = AutoModelForSequenceClassification.from_pretrained(source, dtype=DTYPES[dtype])
            self.tokenizer = AutoTokenizer.from_pretrained(source)
        except (OSError, ValueError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise InputError(f"judge.model '{model}' could not be loaded as a reward model ({first})") from None
        if self.model.config.num_labels != 1:
            raise InputError(
                f"judge.model '{model}' has {self.model.config.num_labels} outputs; a reward model needs exactly one"
            )
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        # sequence-classification heads read the last non-pad token, which they find through the config's pad id
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.batch_size, self.max_length = batch_size, max_length

    def score(self, prompts: list[str], responses: list[str]) -> list[float]:
        texts = [p + r for p, r in zip(prompts, responses, strict=True)]
        scores: list[float] = []
        side = self.tokenizer.truncation_side, self.tokenizer.padding_side
        self.tokenizer.truncation_side, self.tokenizer.padding_side = "left", "right"
        try:
            with inference(self.model):
                for start in range(0, len(texts), self.batch_size):
                    enc = self.tokenizer(
                        texts[start : start + self.batch_size],
                        padding=True,
                        truncation=True,
                        max_length=self.max_length,
                        return_tensors="pt",
                    ).to(model_device(self.model))
                    scores.extend(self.model(**enc).logits[:, 0].float().tolist())
        finally:
            self.tokenizer.truncation_side, self.tokenizer.padding_side = side
        return scores
