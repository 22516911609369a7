"""Schema adapters on hand-written rows, their row-level problems, and detection from a dataset's columns."""

import pytest
from datasets import Features, Json, List, Value

from lit_daa.data.bad_rows import BadRow
from lit_daa.data.schemas import (
    HHRLHF,
    Conversational,
    PromptChosenRejected,
    SummarizeFromFeedback,
    check_columns,
    detect_schema,
)
from lit_daa.errors import InputError
from lit_daa.synthetic.tokenizer import build_word_tokenizer
from lit_daa.synthetic.world import vocabulary

TOKENIZER = build_word_tokenizer(vocabulary())  # its chat template: "role : content ... assistant :"
TEXT = Value("string")
MESSAGES = List({"role": TEXT, "content": TEXT})


def msg(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content}


def test_prompt_chosen_rejected_with_renamed_columns():
    schema = PromptChosenRejected(prompt="question", chosen="good", rejected="bad")
    row = {"question": "topic food :", "good": " food_1", "bad": " music_2"}
    assert schema.to_triple(row, TOKENIZER) == ("topic food :", " food_1", " music_2")
    assert schema.required_columns == ("question", "good", "bad")


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"prompt": "p", "rejected": "r"}, "field 'chosen': missing value"),
        ({"prompt": "p", "chosen": 5, "rejected": "r"}, "field 'chosen': expected a string, found int"),
        ({"prompt": "p", "chosen": "c", "rejected": "  \n"}, "field 'rejected': empty response"),
        ({"prompt": "", "chosen": "c", "rejected": "r"}, "field 'prompt': empty prompt"),
    ],
)
def test_prompt_chosen_rejected_bad_rows_name_the_field(row, message):
    with pytest.raises(BadRow) as caught:
        PromptChosenRejected().to_triple(row, TOKENIZER)
    assert str(caught.value) == message


def test_conversational_takes_the_shared_prefix_as_prompt():
    row = {
        "chosen": [msg("user", "hello"), msg("assistant", "food_1 food_2")],
        "rejected": [msg("user", "hello"), msg("assistant", "music_3")],
    }
    assert Conversational().to_triple(row, TOKENIZER) == ("user : hello assistant :", "food_1 food_2", "music_3")


def test_conversational_with_a_prompt_column_of_messages_or_text():
    row = {
        "prompt": [msg("system", "be brief"), msg("user", "hello")],
        "chosen": [msg("assistant", "yes")],
        "rejected": [msg("assistant", "no")],
    }
    assert Conversational().to_triple(row, TOKENIZER) == ("system : be brief user : hello assistant :", "yes", "no")
    row["prompt"] = "hello"
    assert Conversational().to_triple(row, TOKENIZER)[0] == "user : hello assistant :"


@pytest.mark.parametrize(
    ("chosen", "rejected", "message"),
    [
        (
            [msg("user", "a"), msg("assistant", "b")],
            [msg("user", "x"), msg("assistant", "c")],
            "field 'rejected': the messages before the last reply differ from 'chosen'",
        ),
        (
            [msg("user", "a")],
            [msg("user", "a"), msg("assistant", "c")],
            "field 'chosen[-1].role': the last message is from 'user', not 'assistant'",
        ),
        (
            [msg("user", "a"), msg("assistant", "")],
            [msg("user", "a"), msg("assistant", "c")],
            "field 'chosen[-1].content': empty response",
        ),
        ("b", [msg("user", "a"), msg("assistant", "c")], "field 'chosen': expected a list of messages, found str"),
        ([msg("assistant", "b")], [msg("assistant", "c")], "field 'chosen': no prompt messages before the last reply"),
    ],
)
def test_conversational_bad_rows(chosen, rejected, message):
    with pytest.raises(BadRow) as caught:
        Conversational().to_triple({"chosen": chosen, "rejected": rejected}, TOKENIZER)
    assert str(caught.value) == message


def test_conversational_needs_a_chat_template():
    plain = build_word_tokenizer(vocabulary())
    plain.chat_template = None
    row = {"chosen": [msg("user", "a"), msg("assistant", "b")], "rejected": [msg("user", "a"), msg("assistant", "c")]}
    with pytest.raises(InputError, match="chat template"):
        Conversational().to_triple(row, plain)


def test_hh_rlhf_splits_after_the_last_assistant_turn():
    prompt = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: a joke?\n\nAssistant:"
    row = {"chosen": prompt + " Knock knock.", "rejected": prompt + " No."}
    assert HHRLHF().to_triple(row, TOKENIZER) == (prompt, " Knock knock.", " No.")


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            {"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: z\n\nAssistant: c"},
            "field 'rejected': the dialogue before the last reply differs from 'chosen'",
        ),
        (
            {"chosen": "\n\nHuman: a", "rejected": "\n\nHuman: a\n\nAssistant: c"},
            "field 'chosen': no '\\n\\nAssistant:' turn",
        ),
        (
            {"chosen": "\n\nHuman: a\n\nAssistant: ", "rejected": "\n\nHuman: a\n\nAssistant: c"},
            "field 'chosen': empty response after the last 'Assistant:'",
        ),
    ],
)
def test_hh_rlhf_bad_rows(row, message):
    with pytest.raises(BadRow) as caught:
        HHRLHF().to_triple(row, TOKENIZER)
    assert str(caught.value) == message


def summarize_row(choice: int = 1) -> dict:
    return {
        "info": {"id": "t3_x", "post": "My cat sleeps all day.", "title": "Lazy cat", "subreddit": "cats"},
        "summaries": [{"text": "cat sleeps ", "policy": "a"}, {"text": " my cat is lazy", "policy": "b"}],
        "choice": choice,
    }


def test_summarize_from_feedback_builds_the_tldr_prompt():
    prompt = "SUBREDDIT: r/cats\nTITLE: Lazy cat\nPOST: My cat sleeps all day.\nTL;DR:"
    assert SummarizeFromFeedback().to_triple(summarize_row(1), TOKENIZER) == (prompt, " my cat is lazy", " cat sleeps")
    assert SummarizeFromFeedback().to_triple(summarize_row(0), TOKENIZER) == (prompt, " cat sleeps", " my cat is lazy")


def test_summarize_from_feedback_bad_rows():
    row = summarize_row()
    row["info"]["post"] = None  # the CNN/DM rows of the release have an article instead of a post
    with pytest.raises(BadRow, match="field 'info.post': missing value"):
        SummarizeFromFeedback().to_triple(row, TOKENIZER)
    with pytest.raises(BadRow, match="field 'choice': expected 0 or 1, found 2"):
        SummarizeFromFeedback().to_triple(summarize_row(2), TOKENIZER)


@pytest.mark.parametrize(
    ("features", "expected"),
    [
        ({"prompt": TEXT, "chosen": TEXT, "rejected": TEXT, "id": Value("int64")}, PromptChosenRejected),
        ({"chosen": TEXT, "rejected": TEXT}, HHRLHF),
        ({"chosen": MESSAGES, "rejected": MESSAGES}, Conversational),
        ({"prompt": MESSAGES, "chosen": MESSAGES, "rejected": MESSAGES}, Conversational),
        ({"info": {"post": TEXT}, "summaries": List({"text": TEXT}), "choice": Value("int32")}, SummarizeFromFeedback),
        ({"prompt": TEXT, "chosen": Json(), "rejected": TEXT}, PromptChosenRejected),  # mixed types: rows decide
    ],
)
def test_detect_schema(features, expected):
    assert type(detect_schema(Features(features))) is expected


def test_a_misspelled_column_is_named_with_a_suggestion():
    features = Features({"prompt": TEXT, "choosen": TEXT, "rejected": TEXT})
    with pytest.raises(InputError) as caught:
        detect_schema(features, "train.jsonl")
    assert str(caught.value).startswith(
        "train.jsonl has no column 'chosen' (columns found: prompt, choosen, rejected; did you mean 'choosen'?)"
    )
    with pytest.raises(
        InputError, match=r"^train.jsonl has no column 'bad' \(columns found: prompt, choosen, rejected\)$"
    ):
        check_columns(PromptChosenRejected(chosen="choosen", rejected="bad"), features, "train.jsonl")
