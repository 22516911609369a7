"""Preference data: sources, schema adapters, checks and tokenization, collation and the LightningDataModule."""

from lit_daa.data.bad_rows import BadRow, SplitReport
from lit_daa.data.collate import PreferenceCollator
from lit_daa.data.datamodule import DataReport, PreferenceDataModule
from lit_daa.data.resumable import ResumableDataLoader, ResumableSampler
from lit_daa.data.schemas import (
    HHRLHF,
    Conversational,
    ConversationalUnpaired,
    PromptChosenRejected,
    PromptCompletionLabel,
    Schema,
    SummarizeFromFeedback,
    UnpairedSchema,
    detect_schema,
)
from lit_daa.data.sources import FileSource, HubSource, PreferenceSource
from lit_daa.data.tokenize import TruncationRule

__all__ = [
    "HHRLHF",
    "BadRow",
    "Conversational",
    "ConversationalUnpaired",
    "DataReport",
    "FileSource",
    "HubSource",
    "PreferenceCollator",
    "PreferenceDataModule",
    "PreferenceSource",
    "PromptChosenRejected",
    "PromptCompletionLabel",
    "ResumableDataLoader",
    "ResumableSampler",
    "Schema",
    "SplitReport",
    "SummarizeFromFeedback",
    "TruncationRule",
    "UnpairedSchema",
    "detect_schema",
]
