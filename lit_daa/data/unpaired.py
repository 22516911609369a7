"""Unpaired rows (prompt, completion, label): tokenized once like pairs, then served in the pairs' columns.

An unpaired objective (KTO) needs, per row, its completion and, for the KL reference point, a *mismatched*
completion: another row's completion under this row's prompt. Each served row therefore holds the two responses a
layout places under one prompt, in the columns pairs use, so every layout, the collator and the reference cache
serve unpaired rows unchanged:

- `prompt_ids`: the row's prompt; `chosen_ids`: the row's completion; `rejected_ids`: the mismatched completion;
- `label`: True for a desirable completion; `index`: the row in its source (a split pair: the pair's row).

The mismatched completion of row i is the completion of row i - 1 of its split (row 0 takes the last row's),
fixed once as TRL fixes it, so the reference log-probs of both responses can be cached per row. It is cut, when
longer, to fit `max_length` under this row's prompt (keeping its final EOS).

Preference pairs become unpaired rows with `split_pairs` (the *unpaired view*, `--data.unpaired true`): the chosen
response of every pair a desirable row and the rejected one an undesirable row, desirable rows first, so a row's
mismatched completion comes from another pair.
"""

from __future__ import annotations

from typing import Any

from datasets import Dataset, Features, List, Value, concatenate_datasets
from transformers import PreTrainedTokenizerBase

from lit_daa.data.bad_rows import BadRow
from lit_daa.data.schemas import UnpairedSchema
from lit_daa.data.tokenize import TruncationRule
from lit_daa.errors import InputError

ROW_FEATURES = Features(
    {
        "index": Value("int64"),
        "prompt_ids": List(Value("int32")),
        "completion_ids": List(Value("int32")),
        "label": Value("bool"),
        "problem": Value("string"),
        "truncated": Value("bool"),
    }
)


class RowEncoder:
    """The `datasets.map` function (batched, with indices) for unpaired rows: schema -> text -> ids -> truncation.

    The truncation rule is the pairs' (`TruncationRule`): the prompt keeps its last tokens, the completion is cut
    from the right and ends with EOS. A row's `problem` is "" when it is usable.
    """

    features = ROW_FEATURES
    RULES_VERSION = 1  # part of the `datasets` fingerprint: raise it whenever what a row becomes changes

    def __init__(self, schema: UnpairedSchema, tokenizer: PreTrainedTokenizerBase, rule: TruncationRule) -> None:
        if tokenizer.eos_token_id is None:
            raise InputError("data.tokenizer has no EOS token, which every response must end with")
        self.schema, self.tokenizer, self.rule = schema, tokenizer, rule
        self.rules_version = self.RULES_VERSION

    def __call__(self, batch: dict[str, list[Any]], indices: list[int]) -> dict[str, list[Any]]:
        columns = list(batch)
        texts: list[tuple[str, str]] = []
        labels: list[bool] = []
        problems: list[str] = []
        for i in range(len(indices)):
            try:
                prompt, completion, label = self.schema.to_row({c: batch[c][i] for c in columns}, self.tokenizer)
                problems.append("")
            except BadRow as bad:
                prompt, completion, label = "", "", False  # a placeholder keeps the batch aligned; the row is flagged
                problems.append(str(bad))
            texts.append((prompt, completion))
            labels.append(label)
        prompts, completions = (self._ids([t[k] for t in texts]) for k in range(2))
        out: dict[str, list[Any]] = {k: [] for k in ROW_FEATURES}
        eos = self.tokenizer.eos_token_id
        for i, index in enumerate(indices):
            prompt, completion, cut = [], [], False
            if not problems[i]:
                try:
                    if not prompts[i]:
                        raise BadRow(self.schema.fields[0], "the prompt has no tokens")
                    # the pairs' rule, with the completion as both responses
                    prompt, completion, _, cut = self.rule.apply(prompts[i], completions[i], completions[i], eos)
                except BadRow as bad:
                    problems[i] = str(bad)
            values = (index, prompt, completion, labels[i], problems[i], cut)
            for key, value in zip(ROW_FEATURES, values, strict=True):
                out[key].append(value)
        return out

    def _ids(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"]


def is_unpaired(dataset: Dataset) -> bool:
    """Whether an encoded split holds unpaired rows (`RowEncoder`'s output) rather than pairs."""
    return "completion_ids" in dataset.column_names


def split_pairs(pairs: Dataset) -> Dataset:
    """Encoded pairs -> encoded unpaired rows: every pair's (prompt, chosen, True), then every (prompt, rejected,
    False), each keeping its pair's `index` (cached reference columns of the pairs are dropped)."""
    keep = ["index", "prompt_ids", "truncated"]
    halves = []
    for column, label in (("chosen_ids", True), ("rejected_ids", False)):
        half = pairs.select_columns([*keep, column]).rename_column(column, "completion_ids")
        halves.append(half.add_column("label", [label] * len(half)))
    return concatenate_datasets(halves)


def served_rows(rows: Dataset, max_length: int) -> Dataset:
    """Encoded unpaired rows -> the rows a loader serves (see the module docstring): each with its mismatched
    completion, in the pairs' columns."""
    prompts, completions = rows["prompt_ids"], rows["completion_ids"]
    n = len(completions)
    mismatched = []
    for i, prompt in enumerate(prompts):
        other = list(completions[i - 1 if n > 1 else i])
        room = max_length - len(prompt)
        if len(other) > room:  # a longer completion of another prompt: cut from the right, EOS kept
            other = [*other[: room - 1], other[-1]]
        mismatched.append(other)
    served = rows.rename_column("completion_ids", "chosen_ids")
    return served.add_column("rejected_ids", mismatched, feature=List(Value("int32")))


def unpaired_view(dataset: Dataset, max_length: int) -> Dataset:
    """What `--data.unpaired true` serves for one encoded split: its unpaired rows, or its pairs split into rows."""
    rows = dataset if is_unpaired(dataset) else split_pairs(dataset)
    return served_rows(rows, max_length)


__all__ = ["ROW_FEATURES", "RowEncoder", "is_unpaired", "served_rows", "split_pairs", "unpaired_view"]
