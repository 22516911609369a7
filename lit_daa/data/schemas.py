"""Schema adapters: turn one row of a preference dataset into (prompt, chosen, rejected) text.

Each common layout is a small `Schema` class; `detect_schema` picks one from a dataset's columns when the user
names none. A row that cannot be converted raises `BadRow` naming the field, so the caller can count or skip it.

Responses are the text that follows the prompt verbatim: the tokenizer sees `prompt` and `response` separately
and the model is trained on prompt tokens followed by response tokens.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import Any

from datasets import Json, LargeList, List, Value
from transformers import PreTrainedTokenizerBase

from lit_daa.data.bad_rows import BadRow
from lit_daa.errors import InputError

Triple = tuple[str, str, str]

# The roles a message may have. Only "role" and "content" of a message reach the chat template, so tool messages
# (which need the assistant's tool calls, dropped here) are refused rather than rendered without their context.
ROLES = ("system", "user", "assistant")
MESSAGE_KEYS = "a 'role' and a 'content' string"
MESSAGE_LIST = "list<struct<role, content>> (a list of messages)"


class Schema:
    """Base class: a row layout with the columns it needs and how to read (prompt, chosen, rejected) from a row."""

    @property
    def required_columns(self) -> tuple[str, ...]:
        raise NotImplementedError

    @property
    def fields(self) -> tuple[str, str, str]:
        """How messages name where the prompt, the chosen and the rejected response come from."""
        return ("prompt", "chosen", "rejected")

    def describe(self) -> str:
        """How messages name this layout, e.g. "prompt/chosen/rejected"."""
        return "/".join(self.required_columns)

    def matches(self, features: Mapping[str, Any]) -> bool:
        """Whether a dataset with these column features has this layout (used by `detect_schema`)."""
        return all(c in features for c in self.required_columns) and self.type_problem(features) is None

    def type_problem(self, features: Mapping[str, Any]) -> tuple[str, str] | None:
        """(column, the type it should have) for the first present column whose type cannot hold this layout's
        values, or None when every present column fits. A whole column of the wrong type (e.g. a Parquet int64
        column where text belongs) is a fault of the file, not of its rows, so it is refused before any row."""
        return None

    def to_triple(self, row: Mapping[str, Any], tokenizer: PreTrainedTokenizerBase) -> Triple:
        """(prompt, chosen, rejected) text of one row; raises `BadRow` naming the field at fault."""
        raise NotImplementedError

    # False: rows are preference pairs; True: unpaired rows (prompt, completion, label), see `UnpairedSchema`
    unpaired = False

    def encoder(self, tokenizer: PreTrainedTokenizerBase, rule: Any) -> Any:
        """The `datasets.map` function that tokenizes rows of this layout (`lit_daa.data.tokenize.PairEncoder`)."""
        from lit_daa.data.tokenize import PairEncoder  # tokenize imports this module: imported where used

        return PairEncoder(self, tokenizer, rule)


class PromptChosenRejected(Schema):
    """Three string columns: the prompt and the two responses that follow it.

    Args:
        prompt: name of the prompt column.
        chosen: name of the preferred response column.
        rejected: name of the dispreferred response column.
    """

    def __init__(self, prompt: str = "prompt", chosen: str = "chosen", rejected: str = "rejected") -> None:
        self.prompt, self.chosen, self.rejected = prompt, chosen, rejected

    @property
    def required_columns(self) -> tuple[str, ...]:
        return (self.prompt, self.chosen, self.rejected)

    @property
    def fields(self) -> tuple[str, str, str]:
        return (self.prompt, self.chosen, self.rejected)

    def type_problem(self, features: Mapping[str, Any]) -> tuple[str, str] | None:
        return _first_misfit(features, self.required_columns, _is_text, "string")

    def to_triple(self, row: Mapping[str, Any], tokenizer: PreTrainedTokenizerBase) -> Triple:
        return (
            text_field(row.get(self.prompt), self.prompt, "empty prompt"),
            text_field(row.get(self.chosen), self.chosen),
            text_field(row.get(self.rejected), self.rejected),
        )


class Conversational(Schema):
    """Chat data: `chosen` and `rejected` are lists of {"role", "content"} messages ending with the assistant's reply.

    The prompt is the optional `prompt` column (a list of messages, or a string taken as one user message), else
    the messages before the final reply, which must be the same in `chosen` and `rejected`. It is rendered with
    the tokenizer's chat template (`add_generation_prompt=True`); each response is its final message's content.

    Args:
        chosen: name of the preferred conversation column.
        rejected: name of the dispreferred conversation column.
        prompt: name of the optional prompt column.
    """

    def __init__(self, chosen: str = "chosen", rejected: str = "rejected", prompt: str = "prompt") -> None:
        self.chosen, self.rejected, self.prompt = chosen, rejected, prompt

    @property
    def required_columns(self) -> tuple[str, ...]:
        return (self.chosen, self.rejected)

    @property
    def fields(self) -> tuple[str, str, str]:
        return (self.prompt, self.chosen, self.rejected)

    def describe(self) -> str:
        return f"conversational {self.chosen}/{self.rejected} message lists"

    def type_problem(self, features: Mapping[str, Any]) -> tuple[str, str] | None:
        return _first_misfit(features, self.required_columns, _is_message_list, MESSAGE_LIST)

    def to_triple(self, row: Mapping[str, Any], tokenizer: PreTrainedTokenizerBase) -> Triple:
        chosen_context, chosen = self._split_reply(row.get(self.chosen), self.chosen)
        rejected_context, rejected = self._split_reply(row.get(self.rejected), self.rejected)
        prompt_value = row.get(self.prompt)
        if prompt_value is None:
            if chosen_context != rejected_context:
                raise BadRow(self.rejected, f"the messages before the last reply differ from '{self.chosen}'")
            messages = chosen_context
        elif isinstance(prompt_value, str):
            messages = [{"role": "user", "content": text_field(prompt_value, self.prompt, "empty prompt")}]
        else:
            messages = _messages(prompt_value, self.prompt)
        if not messages:
            raise BadRow(self.chosen, "no prompt messages before the last reply")
        return render_prompt(tokenizer, messages), chosen, rejected

    @staticmethod
    def _split_reply(value: Any, field: str) -> tuple[list[dict[str, str]], str]:
        messages = _messages(value, field)
        if not messages:
            raise BadRow(field, "empty message list")
        last = messages[-1]
        if last["role"] != "assistant":
            raise BadRow(f"{field}[-1].role", f"the last message is from '{last['role']}', not 'assistant'")
        return messages[:-1], text_field(last["content"], f"{field}[-1].content")


class HHRLHF(Schema):
    """Anthropic HH-RLHF: `chosen` and `rejected` are whole dialogues "\\n\\nHuman: ...\\n\\nAssistant: ...".

    Each is split after its last "\\n\\nAssistant:"; the prompt is everything up to and including it (it must be
    the same in both), the response is what follows (usually starting with a space).

    Args:
        chosen: name of the preferred dialogue column.
        rejected: name of the dispreferred dialogue column.
    """

    MARKER = "\n\nAssistant:"

    def __init__(self, chosen: str = "chosen", rejected: str = "rejected") -> None:
        self.chosen, self.rejected = chosen, rejected

    @property
    def required_columns(self) -> tuple[str, ...]:
        return (self.chosen, self.rejected)

    @property
    def fields(self) -> tuple[str, str, str]:
        return (self.chosen, self.chosen, self.rejected)

    def describe(self) -> str:
        return f"HH-RLHF {self.chosen}/{self.rejected} dialogues"

    def type_problem(self, features: Mapping[str, Any]) -> tuple[str, str] | None:
        return _first_misfit(features, self.required_columns, _is_text, "string")

    def to_triple(self, row: Mapping[str, Any], tokenizer: PreTrainedTokenizerBase) -> Triple:
        chosen_prompt, chosen = self._split(row.get(self.chosen), self.chosen)
        rejected_prompt, rejected = self._split(row.get(self.rejected), self.rejected)
        if chosen_prompt != rejected_prompt:
            raise BadRow(self.rejected, f"the dialogue before the last reply differs from '{self.chosen}'")
        return chosen_prompt, chosen, rejected

    def _split(self, value: Any, field: str) -> tuple[str, str]:
        dialogue = text_field(value, field, "empty dialogue")
        cut = dialogue.rfind(self.MARKER)
        if cut < 0:
            raise BadRow(field, f"no {self.MARKER!r} turn")
        cut += len(self.MARKER)
        return dialogue[:cut], text_field(dialogue[cut:], field, "empty response after the last 'Assistant:'")


INFO_FIELDS = ("post", "title", "subreddit")


class SummarizeFromFeedback(Schema):
    """OpenAI summarize-from-feedback comparisons: `info` (post, title, subreddit), two `summaries`, `choice`.

    prompt = "SUBREDDIT: r/{subreddit}\\nTITLE: {title}\\nPOST: {post}\\nTL;DR:"; chosen = " " + the chosen
    summary's text stripped, rejected likewise. Rows without a Reddit post (the CNN/DM articles of the same
    release) are bad rows: skip them with `skip_bad_rows`.
    """

    @property
    def required_columns(self) -> tuple[str, ...]:
        return ("info", "summaries", "choice")

    @property
    def fields(self) -> tuple[str, str, str]:
        return ("info.post", "summaries", "summaries")

    def to_triple(self, row: Mapping[str, Any], tokenizer: PreTrainedTokenizerBase) -> Triple:
        info = row.get("info")
        if not isinstance(info, Mapping):
            raise BadRow("info", _wrong_type("a dict with post/title/subreddit", info))
        post, title, subreddit = (text_field(info.get(k), f"info.{k}", "empty text") for k in INFO_FIELDS)
        summaries = row.get("summaries")
        if not isinstance(summaries, list) or len(summaries) != 2:
            raise BadRow("summaries", _wrong_type("a list of two summaries", summaries))
        choice = row.get("choice")
        if isinstance(choice, bool) or choice not in (0, 1):
            raise BadRow("choice", f"expected 0 or 1, found {choice!r}")
        texts = []
        for i, summary in enumerate(summaries):
            if not isinstance(summary, Mapping):
                raise BadRow(f"summaries[{i}]", _wrong_type("a dict with 'text'", summary))
            texts.append(" " + text_field(summary.get("text"), f"summaries[{i}].text").strip())
        prompt = f"SUBREDDIT: r/{subreddit}\nTITLE: {title}\nPOST: {post}\nTL;DR:"
        return prompt, texts[choice], texts[1 - choice]


Row = tuple[str, str, bool]


class UnpairedSchema(Schema):
    """Base class of unpaired rows: one prompt, one completion and a bool label (True: desirable), as TRL's
    `KTOTrainer` reads them. Rows of this layout train unpaired objectives (KTO) with `data.unpaired` true.

    Args:
        prompt: name of the prompt column.
        completion: name of the completion column.
        label: name of the label column (true or false).
    """

    unpaired = True

    def __init__(self, prompt: str = "prompt", completion: str = "completion", label: str = "label") -> None:
        self.prompt, self.completion, self.label = prompt, completion, label

    @property
    def required_columns(self) -> tuple[str, ...]:
        return (self.prompt, self.completion, self.label)

    @property
    def fields(self) -> tuple[str, str, str]:
        return (self.prompt, self.completion, self.label)

    def type_problem(self, features: Mapping[str, Any]) -> tuple[str, str] | None:
        return _first_misfit(features, (self.label,), _is_bool, "bool (true or false)")

    def to_row(self, row: Mapping[str, Any], tokenizer: PreTrainedTokenizerBase) -> Row:
        """(prompt, completion, label) of one row; raises `BadRow` naming the field at fault."""
        raise NotImplementedError

    def to_triple(self, row: Mapping[str, Any], tokenizer: PreTrainedTokenizerBase) -> Triple:
        raise BadRow(self.label, "an unpaired row (prompt, completion, label) is not a preference pair")

    def encoder(self, tokenizer: PreTrainedTokenizerBase, rule: Any) -> Any:
        """`lit_daa.data.unpaired.RowEncoder`: tokenizes (prompt, completion, label) rows."""
        from lit_daa.data.unpaired import RowEncoder  # it imports this module: imported where used

        return RowEncoder(self, tokenizer, rule)


class PromptCompletionLabel(UnpairedSchema):
    """Three columns: the prompt and the completion that follows it (strings), and a bool label (True: desirable)."""

    def type_problem(self, features: Mapping[str, Any]) -> tuple[str, str] | None:
        return _first_misfit(features, (self.prompt, self.completion), _is_text, "string") or super().type_problem(
            features
        )

    def to_row(self, row: Mapping[str, Any], tokenizer: PreTrainedTokenizerBase) -> Row:
        return (
            text_field(row.get(self.prompt), self.prompt, "empty prompt"),
            text_field(row.get(self.completion), self.completion),
            label_field(row.get(self.label), self.label),
        )


class ConversationalUnpaired(UnpairedSchema):
    """Chat rows: `prompt` a list of messages (or a string taken as one user message), `completion` a list of
    messages ending with the assistant's reply, and a bool `label`.

    The prompt is the prompt messages followed by any completion messages before the final reply, rendered with the
    tokenizer's chat template (`add_generation_prompt=True`); the completion is the final message's content.
    """

    def describe(self) -> str:
        return f"conversational {self.prompt}/{self.completion}/{self.label} unpaired rows"

    def type_problem(self, features: Mapping[str, Any]) -> tuple[str, str] | None:
        return _first_misfit(features, (self.completion,), _is_message_list, MESSAGE_LIST) or super().type_problem(
            features
        )

    def to_row(self, row: Mapping[str, Any], tokenizer: PreTrainedTokenizerBase) -> Row:
        context, completion = Conversational._split_reply(row.get(self.completion), self.completion)
        prompt_value = row.get(self.prompt)
        if isinstance(prompt_value, str):
            messages = [{"role": "user", "content": text_field(prompt_value, self.prompt, "empty prompt")}]
        else:
            messages = _messages(prompt_value, self.prompt)
        messages = messages + context
        if not messages:
            raise BadRow(self.prompt, "no prompt messages before the completion")
        label = label_field(row.get(self.label), self.label)
        return render_prompt(tokenizer, messages), completion, label


def label_field(value: Any, field: str) -> bool:
    """`value` if it is a bool, else `BadRow` naming `field` (0/1 and "true" are refused: they are often a mistake)."""
    if value is None:
        raise BadRow(field, "missing value; every unpaired row needs a label, true (desirable) or false")
    if not isinstance(value, bool):
        raise BadRow(field, f"expected true or false, found {type(value).__name__} {value!r}")
    return value


# Tried in order by `detect_schema`; the first that matches wins (message lists before strings, a prompt
# column before HH's prompt-less dialogues; unpaired rows share no column name with pairs but the prompt, and of
# two layouts with the same columns the string one comes first, so a wrong label type is named as such).
DETECTABLE: tuple[Schema, ...] = (
    SummarizeFromFeedback(),
    Conversational(),
    PromptChosenRejected(),
    HHRLHF(),
    PromptCompletionLabel(),
    ConversationalUnpaired(),
)


def detect_schema(features: Mapping[str, Any], source: str = "the data") -> Schema:
    """The first of `DETECTABLE` whose columns and types match `features` (a dataset's `.features`).

    Raises `InputError` naming the missing column of the closest layout, the columns found and a close match.
    """
    for schema in DETECTABLE:
        if schema.matches(features):
            return schema
    # The closest layout is the one with most of its columns present (exactly, or by a close spelling).
    closest = max(DETECTABLE, key=lambda s: sum(c in features for c in s.required_columns))
    options = ", ".join(s.describe() for s in DETECTABLE)
    missing = [c for c in closest.required_columns if c not in features]
    if not missing:
        misfit = closest.type_problem(features)
        assert misfit is not None, "a layout whose columns are all present and fit matches"
        raise InputError(f"{_misfit_message(source, *misfit, features)} for {closest.describe()} data")
    raise InputError(f"{_missing_message(source, missing[0], features)}; expected one of: {options}")


def check_columns(schema: Schema, features: Mapping[str, Any], source: str) -> None:
    """Raise `InputError` if `source` lacks a column `schema` needs, or has one of a type it cannot read."""
    for column in schema.required_columns:
        if column not in features:
            raise InputError(_missing_message(source, column, features))
    misfit = schema.type_problem(features)
    if misfit is not None:
        raise InputError(f"{_misfit_message(source, *misfit, features)} for {schema.describe()} data")


def _misfit_message(source: str, column: str, expected: str, features: Mapping[str, Any]) -> str:
    return f"{source} column '{column}' has type {describe_feature(features[column])}, expected {expected}"


def _first_misfit(
    features: Mapping[str, Any], columns: tuple[str, ...], fits: Callable[[Any], bool], expected: str
) -> tuple[str, str] | None:
    for column in columns:
        if column in features and not fits(features[column]):
            return column, expected
    return None


def describe_feature(feature: Any) -> str:
    """A column type as messages name it, in Arrow's words: "int64", "list<string>", "struct<role, content>"."""
    if isinstance(feature, Value):
        return {"large_string": "string"}.get(feature.dtype, feature.dtype)
    if isinstance(feature, (List, LargeList)):
        return f"list<{describe_feature(feature.feature)}>"
    if isinstance(feature, Mapping):
        return f"struct<{', '.join(feature)}>"
    if isinstance(feature, Json):
        return "mixed JSON values"
    return type(feature).__name__


def _missing_message(source: str, column: str, features: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(column, list(features), n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"{source} has no column '{column}' ({_found(features)}{hint})"


def _found(features: Mapping[str, Any]) -> str:
    return "columns found: " + (", ".join(features) if features else "none")


def text_field(value: Any, field: str, empty: str = "empty response") -> str:
    """`value` if it is a string with non-space text, else `BadRow` naming `field`."""
    if value is None:
        raise BadRow(field, "missing value")
    if not isinstance(value, str):
        raise BadRow(field, _wrong_type("a string", value))
    if not value.strip():
        raise BadRow(field, empty)
    return value


def render_prompt(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]]) -> str:
    """The chat template's text for `messages` followed by the assistant turn's opening."""
    if not getattr(tokenizer, "chat_template", None):
        # Not a row's fault: every row would fail the same way, so stop with one sentence.
        raise InputError(
            "conversational data needs a tokenizer with a chat template, and data.tokenizer has none "
            "(use a chat model's tokenizer, or give the data as prompt/chosen/rejected strings)"
        )
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def _messages(value: Any, field: str) -> list[dict[str, str]]:
    if value is None:
        raise BadRow(field, "missing value")
    if not isinstance(value, list):
        raise BadRow(field, _wrong_type("a list of messages", value))
    messages = []
    for i, message in enumerate(value):
        if not isinstance(message, Mapping):
            raise BadRow(f"{field}[{i}]", _wrong_type("a message dict with role and content", message))
        role, content = message.get("role"), message.get("content")
        if role is None:
            raise BadRow(f"{field}[{i}].role", f"missing value; every message needs {MESSAGE_KEYS}")
        if not isinstance(role, str):
            raise BadRow(f"{field}[{i}].role", _wrong_type("a string", role))
        if role not in ROLES:
            raise BadRow(f"{field}[{i}].role", f"unknown role '{role}'; roles accepted: {', '.join(ROLES)}")
        if content is None:  # `datasets` reads a message without the key as None: the two are one fault
            raise BadRow(f"{field}[{i}].content", f"missing value; every message needs {MESSAGE_KEYS}")
        if not isinstance(content, str):
            raise BadRow(f"{field}[{i}].content", _wrong_type("a string", content))
        messages.append({"role": role, "content": content})
    return messages


def _wrong_type(expected: str, value: Any) -> str:
    return f"expected {expected}, found {'nothing' if value is None else type(value).__name__}"


def _is_text(feature: Any) -> bool:
    # `Json` is what `datasets` infers for a JSON column whose rows mix types: let rows decide (bad rows).
    return isinstance(feature, Json) or (isinstance(feature, Value) and feature.dtype in ("string", "large_string"))


def _is_bool(feature: Any) -> bool:
    # Json: rows mix types (e.g. one label is a string): let rows decide (bad rows).
    return isinstance(feature, Json) or (isinstance(feature, Value) and feature.dtype == "bool")


def _is_message_list(feature: Any) -> bool:
    # List(Json): messages whose keys differ from row to row (e.g. one lacks "content"): let rows decide.
    return isinstance(feature, (List, LargeList)) and isinstance(feature.feature, (Mapping, Json))
