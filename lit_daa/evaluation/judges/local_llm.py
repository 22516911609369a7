"""A pairwise judge running a local causal LM with transformers (greedy decoding, no network)."""

from __future__ import annotations

import torch
from transformers import GenerationConfig

from lit_daa.evaluation.inference import inference, model_device
from lit_daa.evaluation.judges.pairwise import Comparison, PairwiseJudge
from lit_daa.evaluation.judges.templates import TLDR_JUDGE_TEMPLATE
from lit_daa.evaluation.sampling import left_pad
from lit_daa.models import load_causal_lm, load_tokenizer


class LocalLLMJudge(PairwiseJudge):
    """Asks a local instruction-following LM which of two responses is better (see `PairwiseJudge`).

    The filled template is sent as one user message through the tokenizer's chat template when it has one (and
    `use_chat_template`), else as plain text. Decoding is greedy, so the verdicts are deterministic.

    Args:
        model: a local folder, hub id or embedded name of the judge LM.
        template: the judge prompt with {post}, {summary_a}, {summary_b}.
        max_new_tokens: most tokens of the judge's answer.
        seed: seed of the A/B order.
        batch_size: judge prompts per `generate` call.
        dtype: float32, bfloat16 or float16.
        use_chat_template: render the prompt with the tokenizer's chat template when it has one.
        device: where to run it ("cpu", "cuda", ...); None: CUDA when available.
    """

    def __init__(
        self,
        model: str,
        template: str = TLDR_JUDGE_TEMPLATE,
        max_new_tokens: int = 128,
        seed: int = 0,
        batch_size: int = 8,
        dtype: str = "float32",
        use_chat_template: bool = True,
        device: str | None = None,
    ) -> None:
        super().__init__(template=template, seed=seed)
        self.model = load_causal_lm(model, dtype=dtype, option="judge.model")
        self.model.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.tokenizer = load_tokenizer(model, option="judge.model")
        self.use_chat_template = use_chat_template and bool(getattr(self.tokenizer, "chat_template", None))
        self.batch_size = batch_size
        self.generation = GenerationConfig(
            do_sample=False,
            max_new_tokens=max_new_tokens,
            eos_token_id=self.tokenizer.eos_token_id,
            pad_token_id=self.tokenizer.pad_token_id,
        )

    def ask(self, comparisons: list[Comparison]) -> list[str | None]:
        ids = [self._encode(c.message) for c in comparisons]
        answers: list[str | None] = []
        device = model_device(self.model)
        with inference(self.model):
            for start in range(0, len(ids), self.batch_size):
                batch, mask = left_pad(ids[start : start + self.batch_size], self.tokenizer.pad_token_id, device)
                out = self.model.generate(input_ids=batch, attention_mask=mask, generation_config=self.generation)
                new = out[:, batch.shape[1] :]
                answers.extend(self.tokenizer.batch_decode(new, skip_special_tokens=True))
        return answers

    def _encode(self, message: str) -> list[int]:
        if self.use_chat_template:
            text = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": message}], tokenize=False, add_generation_prompt=True
            )
            # the rendered chat text already carries the model's special tokens
            return self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return self.tokenizer(message)["input_ids"]
