"""Tokenize preference rows once, with the truncation rule, in one `datasets.map` pass.

Truncation rule (`TruncationRule`), in token counts:

1. The prompt keeps its LAST `max_prompt_length` tokens (the end of a prompt, next to the response, matters most).
   With `truncate_prompts=False` a longer prompt is a bad row instead.
2. Each response is `tokens(response) + [eos]`, cut from the RIGHT so that prompt + response <= `max_length`;
   a cut response still ends with EOS, so the model is never taught to stop mid-response without one.

A row's `problem` is "" when it is usable, else e.g. "field 'chosen': empty response"; `truncated` says
whether anything was cut. `datasets` caches the map's output for file-backed data, so re-running is cheap.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from datasets import Dataset, Features, Json, List, Value
from transformers import PreTrainedTokenizerBase

from lit_daa.data.bad_rows import BadRow
from lit_daa.data.schemas import Schema, describe_feature
from lit_daa.errors import InputError

# The user's own precomputed reference log-probs: both columns or neither (see `check_reference_columns`).
REFERENCE_COLUMNS = ("ref_chosen_logps", "ref_rejected_logps")
ENCODED_FEATURES = Features(
    {
        "index": Value("int64"),
        "prompt_ids": List(Value("int32")),
        "chosen_ids": List(Value("int32")),
        "rejected_ids": List(Value("int32")),
        "problem": Value("string"),
        "truncated": Value("bool"),
    }
)


def check_reference_columns(features: Mapping[str, Any], source: str) -> None:
    """Refuse a file that has one precomputed reference column without the other, or one of a non-number type.

    Both are faults of the file (no row could be used as meant), so they stop loading even with `skip_bad_rows`;
    the values themselves are checked per row by `reference_logp`.
    """
    present = [c for c in REFERENCE_COLUMNS if c in features]
    if len(present) == 1:
        other = next(c for c in REFERENCE_COLUMNS if c not in features)
        raise InputError(
            f"{source} has the column '{present[0]}' but not '{other}'; give both precomputed reference columns "
            "(and they are used), or neither (and the reference model computes both)"
        )
    for column in present:
        feature = features[column]
        numeric = isinstance(feature, Value) and (feature.dtype.startswith(("int", "uint", "float")))
        if not (numeric or isinstance(feature, Json)):  # Json: mixed types, rows decide
            raise InputError(
                f"{source} column '{column}' has type {describe_feature(feature)}, expected a number "
                "(the reference model's summed log-probability of the response)"
            )


def reference_logp(value: Any, column: str) -> float:
    """One row's precomputed reference log-prob as a float; `BadRow` for a missing, non-number or non-finite value."""
    if value is None:
        raise BadRow(column, "missing value; every row needs both precomputed reference log-probs")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRow(column, f"expected a number, found {type(value).__name__}")
    if not math.isfinite(value):
        raise BadRow(column, f"expected a finite number, found {value}")
    return float(value)


@dataclass(frozen=True)
class TruncationRule:
    """Length limits in tokens; see the module docstring for the rule.

    Args:
        max_length: most tokens of prompt + one response (EOS included).
        max_prompt_length: most prompt tokens; must be below `max_length` so every response keeps a token.
        truncate_prompts: cut long prompts from the left (True) or treat them as bad rows (False).
    """

    max_length: int = 512
    max_prompt_length: int = 256
    truncate_prompts: bool = True

    def __post_init__(self) -> None:
        if self.max_prompt_length < 1 or self.max_length <= self.max_prompt_length:
            raise InputError(
                f"data.max_prompt_length ({self.max_prompt_length}) must be at least 1 and below data.max_length "
                f"({self.max_length}), so that every response keeps at least its EOS token"
            )

    def apply(
        self, prompt: list[int], chosen: list[int], rejected: list[int], eos: int
    ) -> tuple[list[int], list[int], list[int], bool]:
        """(prompt, chosen + [eos], rejected + [eos]) cut to the limits, and whether anything was cut.

        Raises `BadRow` for a prompt over `max_prompt_length` when `truncate_prompts` is False.

        Example (max_length 5, max_prompt_length 2, eos 0): prompt [1, 2, 3], chosen [4, 5, 6], rejected [7]
        -> ([2, 3], [4, 5, 0], [7, 0], True): the prompt lost its first token, chosen its last, both end in EOS.
        """
        cut = False
        if len(prompt) > self.max_prompt_length:
            if not self.truncate_prompts:
                raise BadRow("prompt", f"{len(prompt)} tokens, more than max_prompt_length {self.max_prompt_length}")
            prompt, cut = prompt[-self.max_prompt_length :], True
        budget = self.max_length - len(prompt)
        responses = []
        for response in (chosen, rejected):
            if len(response) + 1 > budget:
                response, cut = response[: budget - 1], True
            responses.append([*response, eos])
        return prompt, responses[0], responses[1], cut


class PairEncoder:
    """The `datasets.map` function (batched, with indices): schema -> text -> token ids -> truncation rule.

    Kept as a class with plain state so `datasets` can fingerprint it and reuse its cached output.
    """

    features = ENCODED_FEATURES  # the columns it writes (`lit_daa.data.unpaired.RowEncoder` writes others)
    # Part of the fingerprint: `datasets` hashes the instance's state, not the code, so a cached map made before
    # a rule changed would otherwise be reused without the new checks. Raise it whenever what a row becomes changes.
    RULES_VERSION = 2

    def __init__(self, schema: Schema, tokenizer: PreTrainedTokenizerBase, rule: TruncationRule) -> None:
        if tokenizer.eos_token_id is None:
            raise InputError("data.tokenizer has no EOS token, which every response must end with")
        self.schema, self.tokenizer, self.rule = schema, tokenizer, rule
        self.rules_version = self.RULES_VERSION  # instance state, so the fingerprint sees it

    def __call__(self, batch: dict[str, list[Any]], indices: list[int]) -> dict[str, list[Any]]:
        columns = list(batch)
        with_reference = all(column in batch for column in REFERENCE_COLUMNS)  # the user's own reference log-probs
        texts: list[tuple[str, str, str]] = []
        references: dict[str, list[float]] = {column: [] for column in REFERENCE_COLUMNS}
        problems: list[str] = []
        for i in range(len(indices)):
            try:
                prompt, chosen, rejected = self.schema.to_triple({c: batch[c][i] for c in columns}, self.tokenizer)
                if chosen == rejected:
                    raise BadRow(self.schema.fields[2], "the same text as the chosen response")
                values = [reference_logp(batch[c][i], c) for c in REFERENCE_COLUMNS] if with_reference else []
                texts.append((prompt, chosen, rejected))
                problems.append("")
            except BadRow as bad:
                texts.append(("", "", ""))  # a placeholder keeps the batch aligned; the row is flagged
                problems.append(str(bad))
                values = [0.0] * len(REFERENCE_COLUMNS) if with_reference else []
            if with_reference:
                for column, value in zip(REFERENCE_COLUMNS, values, strict=True):
                    references[column].append(value)
        # One batched call per part: the fast tokenizers work much faster on lists.
        prompts, chosens, rejecteds = (self._ids([t[k] for t in texts]) for k in range(3))
        out: dict[str, list[Any]] = {k: [] for k in ENCODED_FEATURES}
        for i, index in enumerate(indices):
            prompt, chosen, rejected, cut = [], [], [], False
            if not problems[i]:
                try:
                    if not prompts[i]:
                        raise BadRow(self.schema.fields[0], "the prompt has no tokens")
                    prompt, chosen, rejected, cut = self.rule.apply(
                        prompts[i], chosens[i], rejecteds[i], self.tokenizer.eos_token_id
                    )
                except BadRow as bad:
                    problems[i] = str(bad)
            for key, value in zip(ENCODED_FEATURES, (index, prompt, chosen, rejected, problems[i], cut), strict=True):
                out[key].append(value)
        if with_reference:
            out.update(references)
        return out

    def _ids(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"]


def encode_pairs(dataset: Dataset, encoder: PairEncoder, desc: str = "Tokenizing preference pairs") -> Dataset:
    """Map `dataset` with `encoder`; returns only the encoder's `features` columns (a `PairEncoder`'s:
    `ENCODED_FEATURES`; unpaired rows' `RowEncoder` has its own), one row per input row.

    `index` is the row's 0-based position in `dataset` (its source split), kept through any later skipping
    or splitting, so a bad row and a batch row can always be traced back to the source. Columns
    `ref_chosen_logps` and `ref_rejected_logps` (precomputed reference log-probs), when both are present, are kept
    (a row with a missing, non-number or non-finite value is a bad row).
    """
    features = encoder.features
    if features is ENCODED_FEATURES and all(column in dataset.column_names for column in REFERENCE_COLUMNS):
        features = Features({**ENCODED_FEATURES, **{c: Value("float32") for c in REFERENCE_COLUMNS}})
    return dataset.map(
        encoder,
        batched=True,
        with_indices=True,
        remove_columns=dataset.column_names,
        features=features,
        desc=desc,
    )
