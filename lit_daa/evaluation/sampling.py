"""One completion per prompt by pure ancestral sampling, so that a Monte-Carlo KL over the samples is unbiased.

Only temperature is applied to the logits (top_k=0, top_p=1.0, no repetition penalty): at temperature 1 the samples
are draws from the policy's own sequence distribution, truncated at `max_new_tokens`. At another temperature the
samples come from a tempered distribution and `kl.estimate_kl` then measures E_tempered[log pi - log pi_ref],
which is not a KL.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import GenerationConfig, PreTrainedTokenizerBase

from lit_daa.errors import InputError
from lit_daa.evaluation.inference import inference, model_device


@dataclass
class Samples:
    """Sampled responses, one per prompt, as token ids and text.

    Attributes:
        prompts: the N prompt strings.
        prompt_ids: N lists of prompt token ids (tokenized without special tokens, as in training).
        response_ids: N lists of response token ids; a response that stopped ends with its EOS token, one that hit
            `max_new_tokens` has none. Nothing after the first EOS is kept.
        responses: N decoded responses, without EOS and special tokens.
    """

    prompts: list[str]
    prompt_ids: list[list[int]]
    response_ids: list[list[int]]
    responses: list[str]
    eos_token_id: int | None = None

    def __len__(self) -> int:
        return len(self.prompts)

    @property
    def lengths(self) -> list[int]:
        """Response lengths in tokens, EOS included when produced (the count the log-ratios are summed over)."""
        return [len(r) for r in self.response_ids]

    @property
    def cut(self) -> list[bool]:
        """Per response: it ended without EOS, i.e. was cut at `max_new_tokens` (False for all when EOS is unknown)."""
        eos = self.eos_token_id
        return [eos is not None and (not r or r[-1] != eos) for r in self.response_ids]


def sample(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    max_new_tokens: int = 32,
    temperature: float = 1.0,
    batch_size: int = 64,
    seed: int = 0,
    max_prompt_length: int | None = None,
) -> Samples:
    """Draw one response per prompt with `model.generate(do_sample=True, top_k=0, top_p=1.0)`.

    Prompts are left-padded in batches of `batch_size` (position ids follow the attention mask, so padding does not
    change the distribution). The draw is reproducible for a given (seed, batch_size): the global RNG is seeded
    inside `torch.random.fork_rng`, so the caller's RNG state is left as it was.

    Args:
        model: a Hugging Face causal LM.
        tokenizer: its tokenizer; needs an EOS token (a missing pad token falls back to EOS).
        prompts: N prompt strings.
        max_new_tokens: most response tokens, EOS included.
        temperature: softmax temperature (1.0 for the paper's protocol and an unbiased KL).
        batch_size: prompts per `generate` call.
        seed: seed of the draw.
        max_prompt_length: keep only the last this many prompt tokens (the training truncation rule); None: all.

    Returns:
        `Samples` with N entries in the order of `prompts`.
    """
    eos = tokenizer.eos_token_id
    if eos is None:
        raise InputError("the tokenizer has no EOS token, which sampling needs to know where a response stops")
    if max_new_tokens < 1 or temperature <= 0 or batch_size < 1:
        raise InputError(
            f"sampling needs max_new_tokens >= 1, temperature > 0 and batch_size >= 1 "
            f"(got {max_new_tokens}, {temperature}, {batch_size})"
        )
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    prompt_ids = [ids[-max_prompt_length:] if max_prompt_length else ids for ids in _encode(tokenizer, prompts)]
    response_ids = sample_ids(model, prompt_ids, eos, pad, max_new_tokens, temperature, batch_size, seed)
    responses = [tokenizer.decode(_strip_eos(r, eos), skip_special_tokens=True) for r in response_ids]
    return Samples(list(prompts), prompt_ids, response_ids, responses, eos)


def sample_ids(
    model: nn.Module,
    prompt_ids: list[list[int]],
    eos: int,
    pad: int,
    max_new_tokens: int,
    temperature: float = 1.0,
    batch_size: int = 64,
    seed: int = 0,
    synced: bool = False,
) -> list[list[int]]:
    """One ancestral sample per prompt from token ids: N response id lists (each cut after its first EOS).

    The id-level half of `sample` (see it for the batching, padding and seeding rules). `synced=True` keeps
    every rank of a sharded model generating until all of them are done (Hugging Face's `synced_gpus`), which
    FSDP needs because each forward is collective.
    """
    config = GenerationConfig(
        do_sample=True,
        temperature=temperature,
        top_k=0,
        top_p=1.0,
        repetition_penalty=1.0,
        max_new_tokens=max_new_tokens,
        eos_token_id=eos,
        pad_token_id=pad,
    )
    device = model_device(model)
    response_ids: list[list[int]] = []
    cuda = [device.index or 0] if device.type == "cuda" else []
    with inference(model), torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        for start in range(0, len(prompt_ids), batch_size):
            batch = prompt_ids[start : start + batch_size]
            ids, mask = left_pad(batch, pad, device)
            out = model.generate(input_ids=ids, attention_mask=mask, generation_config=config, synced_gpus=synced)
            response_ids.extend(_cut_at_eos(row, eos) for row in out[:, ids.shape[1] :].tolist())
    return response_ids


def _encode(tokenizer: PreTrainedTokenizerBase, prompts: list[str]) -> list[list[int]]:
    ids = tokenizer(list(prompts), add_special_tokens=False)["input_ids"] if prompts else []
    for i, row in enumerate(ids):
        if not row:
            raise InputError(f"prompt {i + 1} has no tokens, so there is nothing to condition a sample on")
    return ids


def left_pad(rows: list[list[int]], pad: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) input ids and attention mask with each row right-aligned (padding on the left), on `device`."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row) :] = torch.tensor(row)
        mask[i, width - len(row) :] = 1
    return ids.to(device), mask.to(device)


def _cut_at_eos(row: list[int], eos: int) -> list[int]:
    # generate pads finished rows after their EOS; the pad id may equal EOS (Pythia), so cut at the first EOS
    return row[: row.index(eos) + 1] if eos in row else row


def _strip_eos(row: list[int], eos: int) -> list[int]:
    return row[:-1] if row and row[-1] == eos else row
