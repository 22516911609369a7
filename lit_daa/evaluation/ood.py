"""The in-data tokens of a preference set: the vocabulary its training answers use, for the out-of-data mass.

A DAA objective only ever pushes on the log-probabilities of tokens in its training answers (chosen and rejected);
what it does to every other token is a side effect. `ood_mass` in the results table (docs/results_schema.md) is the
probability the policy moves onto those other tokens while answering, measured against the set built here:

    in-data = {ids of every token of every chosen and rejected answer of the training split} + {EOS, pad}

Answers are tokenized as training tokenizes them (`tokenizer(text, add_special_tokens=False)`, then EOS); prompts
do not count, since no objective trains the policy to emit them. Tokens a training truncation cut off would still
count as in-data here (none are cut in the synthetic world, whose answers are far below `data.max_length`).
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Iterable, Mapping
from typing import Any

from transformers import PreTrainedTokenizerBase

from lit_daa.data.bad_rows import BadRow
from lit_daa.data.schemas import Schema, detect_schema
from lit_daa.data.sources import TRAIN, PreferenceSource
from lit_daa.errors import InputError

# source -> {tokenizer fingerprint: token set}: a sweep evaluates many checkpoints against one source, and drawing
# and tokenizing its pairs again for each would repeat the same work (weak keys: a dropped source frees its sets).
_CACHE: weakref.WeakKeyDictionary[PreferenceSource, dict[str, frozenset[int]]] = weakref.WeakKeyDictionary()
_BY_ROWS: dict[tuple[str, str], frozenset[int]] = {}


def answer_tokens(answers: Iterable[str], tokenizer: PreTrainedTokenizerBase) -> frozenset[int]:
    """The token ids of `answers` (tokenized without special tokens, as training does) plus EOS and pad."""
    texts = list(answers)
    ids: set[int] = set()
    for start in range(0, len(texts), 1024):  # batched: the fast tokenizer's per-call overhead dominates
        for row in tokenizer(texts[start : start + 1024], add_special_tokens=False)["input_ids"]:
            ids.update(row)
    ids.update(i for i in (tokenizer.eos_token_id, tokenizer.pad_token_id) if i is not None)
    return frozenset(ids)


def training_answer_tokens(source: PreferenceSource, tokenizer: PreTrainedTokenizerBase) -> frozenset[int]:
    """The in-data token set of `source`'s training split (see the module docstring); computed once per source
    and tokenizer.

    Rows are read with the schema the data module would detect for them; a row that schema cannot read is skipped
    (the data module skips it too).
    """
    key = _fingerprint(tokenizer)
    known = _CACHE.setdefault(source, {})
    if key not in known:
        try:
            dataset = source.train()
        except InputError as err:
            raise InputError(f"evaluation training_data: {err}") from None
        # every checkpoint of a sweep builds its own source object for the same rows: key on the rows as well
        by_rows = (getattr(dataset, "_fingerprint", None), key)
        tokens = _BY_ROWS.get(by_rows) if by_rows[0] is not None else None
        if tokens is None:
            schema = detect_schema(dataset.features, f"evaluation training_data ({source.split_name(TRAIN)})")
            tokens = answer_tokens(_answers(dataset, schema, tokenizer), tokenizer)
            if by_rows[0] is not None:
                _BY_ROWS[by_rows] = tokens
        known[key] = tokens
    return known[key]


def _answers(rows: Iterable[Mapping[str, Any]], schema: Schema, tokenizer: PreTrainedTokenizerBase) -> Iterable[str]:
    for row in rows:
        try:
            _, chosen, rejected = schema.to_triple(row, tokenizer)
        except BadRow:
            continue
        yield chosen
        yield rejected


def _fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """What decides how text becomes ids: the fast tokenizer's full definition, else its vocabulary."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    text = backend.to_str() if backend is not None else repr(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(text.encode()).hexdigest()
