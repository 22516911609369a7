"""PreferenceDataModule: load preference pairs, check and tokenize them once, and serve resumable batches."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import torch
from datasets import Dataset
from jsonargparse import lazy_instance
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerBase

from lit_daa.data.bad_rows import SplitReport, settle_bad_rows
from lit_daa.data.collate import PreferenceCollator
from lit_daa.data.eval_shards import EvalShardSampler, padded_for_ranks
from lit_daa.data.resumable import ResumableDataLoader, ResumableSampler
from lit_daa.data.schemas import Schema, check_columns, detect_schema
from lit_daa.data.sources import TRAIN, VALIDATION, FileSource, HubSource, PreferenceSource
from lit_daa.data.tokenize import REFERENCE_COLUMNS, TruncationRule, check_reference_columns, encode_pairs
from lit_daa.data.unpaired import unpaired_view
from lit_daa.errors import InputError
from lit_daa.layouts import Layout, SharedPrompt
from lit_daa.models import load_tokenizer

if TYPE_CHECKING:
    from lit_daa.reference_cache import CacheResult, ReferenceCache


@dataclass(frozen=True)
class DataReport:
    """What loading found: per source split, and the pairs each loader serves.

    Args:
        train: the training split's rows, bad rows and truncations.
        validation: the same for the source's validation split; None when it was carved out of training rows.
        train_pairs: pairs the train loader serves.
        val_pairs: pairs the validation (and test) loader serves.
    """

    train: SplitReport
    validation: SplitReport | None
    train_pairs: int
    val_pairs: int


class PreferenceDataModule(LightningDataModule):
    """Preference pairs (prompt, chosen, rejected) from files, a hub dataset or a source class, as batches.

    Rows are converted to text by a schema, tokenized once (cached by `datasets` for file-backed data),
    truncated by a fixed rule (prompt from the left, responses from the right, EOS kept) and checked: a bad row
    stops loading with one sentence naming the file, the row (JSONL: its line number; otherwise its position
    counted from 1) and the field, unless `skip_bad_rows` drops such rows and reports how many. Batches are
    described in `PreferenceCollator`. The train loader shuffles by (seed, epoch) and resumes mid-epoch exactly.

    Args:
        tokenizer: model name or folder whose tokenizer encodes the text (usually the policy's).
        train_path: training rows: a .jsonl, .json or .parquet file, or a folder saved with save_to_disk.
        val_path: validation rows in the same forms (with train_path only).
        hub_dataset: a dataset to load with `datasets.load_dataset` (hub id or local folder of data files).
        hub_config: the hub dataset's configuration name.
        hub_train_split: the hub dataset's split to train on.
        hub_val_split: the hub dataset's split to validate on.
        source: any PreferenceSource, e.g. lit_daa.synthetic.source.SyntheticPreferences. Exactly one of
            train_path, hub_dataset and source must be given.
        schema: how rows map to (prompt, chosen, rejected); None: detected from the columns.
        val_fraction: share of training rows held out for validation when the source has no validation split
            (chosen by `seed`; 0: no validation).
        max_length: most tokens of prompt + one response (EOS included); responses are cut from the right.
        max_prompt_length: most prompt tokens; longer prompts are cut from the left (see truncate_prompts).
        truncate_prompts: cut long prompts (True) or treat them as bad rows (False).
        skip_bad_rows: drop bad rows and report their count instead of stopping at the first.
        batch_size: pairs per training batch per device (a batch holds 2 * batch_size sequences).
        eval_batch_size: pairs per validation/test batch; None: batch_size.
        num_workers: DataLoader worker processes.
        seed: seed of the training order (per epoch) and of the validation hold-out.
        layout: how a batch's pairs become model rows (`lit_daa.layouts`): `SharedPrompt` (default: each prompt
            once; needs sdpa or flex_attention, as Hugging Face models use by default), `Packed` (each prompt once,
            several pairs per row up to a token budget: no padding but at the end; best with flex_attention on
            GPUs) or `Concatenated` (every prompt twice, padded; works with any attention); all give the same
            log-probs.
        test_path: pairs for `lit-daa test` (a file or save_to_disk folder); without it (and without
            hub_test_split) `lit-daa test` scores the validation pairs.
        hub_test_split: with hub_dataset: the split `lit-daa test` scores.
        extra_val: named extra validation sets, {name: file or folder}, e.g. {ood: ood.jsonl}; each is checked like
            the training data and logged as `val/<name>/...` (the main set stays `val/...`).
        bucket_batches: put pairs of similar length in the same batch, sorting within groups of this many batches
            of the seeded order (less padding; the order stays seeded and resumable). 0: off.
        unpaired: serve unpaired rows (prompt, completion, label) for unpaired objectives (KTO): unpaired data as
            it is, and preference pairs split into a desirable (prompt, chosen) and an undesirable (prompt, rejected)
            row, e.g. the synthetic world's unpaired view (`lit_daa.data.unpaired`). Batches then hold batch_size
            rows, desirable and undesirable in whatever ratio the shuffle gives.
    """

    def __init__(
        self,
        tokenizer: str = "embedded:neox-tiny",
        train_path: str | None = None,
        val_path: str | None = None,
        hub_dataset: str | None = None,
        hub_config: str | None = None,
        hub_train_split: str = "train",
        hub_val_split: str | None = None,
        source: PreferenceSource | None = None,
        schema: Schema | None = None,
        val_fraction: float = 0.05,
        max_length: int = 512,
        max_prompt_length: int = 256,
        truncate_prompts: bool = True,
        skip_bad_rows: bool = False,
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        seed: int = 42,
        layout: Layout = lazy_instance(SharedPrompt),
        bucket_batches: int = 0,
        test_path: str | None = None,
        hub_test_split: str | None = None,
        extra_val: dict[str, str] | None = None,
        unpaired: bool = False,
    ) -> None:
        super().__init__()
        self.tokenizer_name = tokenizer
        self.source = _choose_source(
            train_path, val_path, hub_dataset, hub_config, hub_train_split, hub_val_split, source
        )
        self.source.attach(tokenizer)
        self.schema = schema
        self.rule = TruncationRule(max_length, max_prompt_length, truncate_prompts)
        if not 0.0 <= val_fraction < 1.0:
            raise InputError(f"data.val_fraction must be in [0, 1), got {val_fraction}")
        for option, value, least in (("batch_size", batch_size, 1), ("num_workers", num_workers, 0)):
            if value < least:
                raise InputError(f"data.{option} must be at least {least}, got {value}")
        if eval_batch_size is not None and eval_batch_size < 1:
            raise InputError(f"data.eval_batch_size must be at least 1, got {eval_batch_size}")
        self.val_fraction = val_fraction
        self.skip_bad_rows = skip_bad_rows
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.layout = layout
        if bucket_batches < 0:
            raise InputError(f"data.bucket_batches must be at least 0, got {bucket_batches}")
        self.bucket_batches = bucket_batches
        self.unpaired = unpaired
        self.extra_sources: dict[str, PreferenceSource] = {}  # "test" and "val/<name>" sets, each from its own source
        if test_path is not None and hub_test_split is not None:
            raise InputError("give the test pairs with one of data.test_path and data.hub_test_split")
        if hub_test_split is not None:
            if hub_dataset is None:
                raise InputError("data.hub_test_split needs data.hub_dataset")
            self.extra_sources["test"] = HubSource(hub_dataset, hub_config, hub_test_split)
        if test_path is not None:
            self.extra_sources["test"] = _file_source(test_path, "data.test_path")
        for name, path in (extra_val or {}).items():
            if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
                raise InputError(f"data.extra_val name '{name}' must be letters, digits, '_', '-' or '.'")
            self.extra_sources[f"val/{name}"] = _file_source(path, f"data.extra_val.{name}")
        self.train_dataset: Dataset | None = None
        self.val_dataset: Dataset | None = None
        self.extra_datasets: dict[str, Dataset] = {}
        self.report: DataReport | None = None

    @cached_property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        """The tokenizer named by the `tokenizer` option (loaded on first use; pad falls back to EOS)."""
        return load_tokenizer(self.tokenizer_name, option="data.tokenizer")

    @property
    def collator(self) -> PreferenceCollator:
        """Batches pairs as described in `PreferenceCollator`, padding with the tokenizer's pad token."""
        return PreferenceCollator(self.tokenizer.pad_token_id, self.layout)

    def prepare_data(self) -> None:
        # Runs once per node before `setup`: fetch and cache raw data (and build an embedded tokenizer) here so
        # the other ranks find it in the caches rather than all downloading at once.
        self.tokenizer  # noqa: B018 - loading is the point
        self.source.train()
        self.source.validation()
        for source in self.extra_sources.values():
            source.train()

    def setup(self, stage: str | None = None) -> None:
        """Load, check and tokenize every split; later calls do nothing (Lightning calls it once per stage)."""
        if self.report is not None:
            return
        train, train_report = self._encode(TRAIN, self.source.train())
        val_raw = self.source.validation()
        if val_raw is not None:
            val, val_report = self._encode(VALIDATION, val_raw)
        else:
            train, val = self._hold_out(train, train_report.source)
            val_report = None
        for key, source in self.extra_sources.items():
            self.extra_datasets[key], _ = self._encode(TRAIN, source.train(), source)
        if self.unpaired:  # after the hold-out, so that the two rows of one pair stay in one split
            train, val = (None if d is None else unpaired_view(d, self.rule.max_length) for d in (train, val))
            for key, dataset in self.extra_datasets.items():
                self.extra_datasets[key] = unpaired_view(dataset, self.rule.max_length)
        self.train_dataset, self.val_dataset = train, val
        self.report = DataReport(train_report, val_report, len(train), 0 if val is None else len(val))
        kind = "rows" if self.unpaired else "pairs"
        rank_zero_info(f"{len(train)} training {kind}, {self.report.val_pairs} validation {kind}")

    def _encode(self, split: str, raw: Dataset, source: PreferenceSource | None = None) -> tuple[Dataset, SplitReport]:
        source = source or self.source
        if not isinstance(raw, Dataset):
            raise InputError(f"data.source {type(source).__name__} returned {type(raw).__name__}, not a Dataset")
        name = source.split_name(split)
        if len(raw) == 0:
            raise InputError(f"{name} has no rows")
        if self.schema is None:
            schema = detect_schema(raw.features, name)
        else:
            schema = self.schema
            check_columns(schema, raw.features, name)
        if schema.unpaired and not self.unpaired:
            raise InputError(
                f"{name} holds unpaired rows ({schema.describe()}), which only unpaired objectives train on; set "
                "--data.unpaired true with e.g. --config configs/objectives/kto.yaml"
            )
        check_reference_columns(raw.features, name)
        encoder = schema.encoder(self.tokenizer, self.rule)
        encoded = encode_pairs(raw, encoder, desc=f"Tokenizing {name}")
        clean, report = settle_bad_rows(encoded, name, lambda i: source.row_label(split, i), self.skip_bad_rows)
        rank_zero_info(report.summary())
        return clean, report

    def _hold_out(self, train: Dataset, name: str) -> tuple[Dataset, Dataset | None]:
        """Split off `val_fraction` of the rows, chosen by `seed`; both parts keep source order."""
        if self.val_fraction == 0:
            return train, None
        n = len(train)
        n_val = max(1, round(n * self.val_fraction))
        if n_val >= n:
            raise InputError(
                f"data.val_fraction {self.val_fraction} of {name}'s {n} usable rows leaves none to train on "
                "(give validation rows with data.val_path or data.hub_val_split, or lower data.val_fraction)"
            )
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed)).tolist()
        return train.select(sorted(order[n_val:])), train.select(sorted(order[:n_val]))

    def train_dataloader(self) -> ResumableDataLoader:
        dataset = self._require(self.train_dataset)
        ranks, rank = self._shard()
        lengths = pair_lengths(dataset) if self.bucket_batches > 1 else None
        sampler = ResumableSampler(
            dataset,
            batch_size=self.batch_size,
            seed=self.seed,
            num_replicas=ranks,
            rank=rank,
            lengths=lengths,
            bucket_batches=self.bucket_batches,
        )
        self._check_val_interval(math.ceil(sampler.num_samples / self.batch_size))
        return ResumableDataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            collate_fn=self.collator,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def attach_reference_logps(self, cache: ReferenceCache) -> list[CacheResult]:
        """Add cached reference log-prob columns to every split that lacks them (see `lit_daa.reference_cache`)."""
        self._require(self.train_dataset)
        results = []
        for split in ("train", "val"):
            dataset = getattr(self, f"{split}_dataset")
            if dataset is None or all(c in dataset.column_names for c in REFERENCE_COLUMNS):
                continue
            dataset, result = cache.attach(dataset, split)
            setattr(self, f"{split}_dataset", dataset)
            results.append(result)
        for key, dataset in self.extra_datasets.items():
            if not all(c in dataset.column_names for c in REFERENCE_COLUMNS):
                self.extra_datasets[key], result = cache.attach(dataset, key)
                results.append(result)
        return results

    @property
    def val_names(self) -> list[str]:
        """The validation sets in dataloader order: "" for the main set (logged as val/...), then extra names."""
        self._require(self.train_dataset)
        main = [""] if self.val_dataset is not None else []
        return main + [key.removeprefix("val/") for key in self.extra_datasets if key.startswith("val/")]

    def _check_val_interval(self, batches: int) -> None:
        """Refuse, before training, a `val_check_interval` in batches that one epoch never reaches."""
        trainer = self.trainer
        if trainer is None or trainer.check_val_every_n_epoch is None:  # None: the interval spans epochs
            return
        interval = trainer.val_check_interval
        limit = trainer.limit_train_batches
        if isinstance(limit, int):
            batches = min(batches, limit)
        elif isinstance(limit, float):
            batches = int(batches * limit)
        if isinstance(interval, int) and interval > batches:
            raise InputError(
                f"trainer.val_check_interval {interval} is longer than the epoch ({batches} training batches of "
                f"{self.batch_size} pairs per device); give at most {batches}, a fraction such as 0.25, or "
                "--trainer.check_val_every_n_epoch null to count it across epochs"
            )

    def val_dataloader(self) -> DataLoader | list:
        """The main validation set, then the `extra_val` sets (in `val_names` order)."""
        self._require(self.train_dataset)
        loaders = [self._eval_loader(self.val_dataset)] if self.val_dataset is not None else []
        loaders += [self._eval_loader(d) for k, d in self.extra_datasets.items() if k.startswith("val/")]
        return loaders[0] if len(loaders) == 1 else loaders  # an empty list: Lightning runs no validation

    def test_dataloader(self) -> DataLoader | list:
        """The test pairs (data.test_path / hub_test_split), else the validation pairs."""
        self._require(self.train_dataset)
        if "test" in self.extra_datasets:
            return self._eval_loader(self.extra_datasets["test"])
        rank_zero_info("no data.test_path: lit-daa test scores the validation pairs")
        return self._eval_loader(self.val_dataset) if self.val_dataset is not None else []

    def _eval_loader(self, dataset: Dataset) -> DataLoader:
        ranks, rank = self._shard()
        rows = padded_for_ranks(dataset, ranks)  # each pair counted once over all ranks
        return DataLoader(
            rows,
            batch_size=self.eval_batch_size,
            sampler=EvalShardSampler(rows, num_replicas=ranks, rank=rank),
            collate_fn=self.collator,
            num_workers=self.num_workers,
        )

    def _shard(self) -> tuple[int, int]:
        """(data-parallel ranks, this rank) as the strategy reports them; (1, 0) without a distributed Trainer."""
        shards = (self.trainer.distributed_sampler_kwargs if self.trainer is not None else None) or {}
        return shards.get("num_replicas", 1), shards.get("rank", 0)

    def _require(self, dataset: Dataset | None) -> Dataset:
        if dataset is None:
            self.setup()
            dataset = self.train_dataset
        assert dataset is not None
        return dataset


def _file_source(path: str, option: str) -> FileSource:
    """A FileSource for one extra set (its rows are its `train` split), naming `option` in errors."""
    source = FileSource(path)
    source.train_option = option
    return source


def pair_lengths(dataset: Dataset) -> list[int]:
    """Tokens of each pair (prompt + chosen + rejected), read through Arrow."""
    import pyarrow.compute as pc

    table = dataset.with_format("arrow")[:]
    total = None
    for column in ("prompt_ids", "chosen_ids", "rejected_ids"):
        length = pc.list_value_length(table.column(column))
        total = length if total is None else pc.add(total, length)
    return total.to_pylist()


def _choose_source(
    train_path: str | None,
    val_path: str | None,
    hub_dataset: str | None,
    hub_config: str | None,
    hub_train_split: str,
    hub_val_split: str | None,
    source: PreferenceSource | None,
) -> PreferenceSource:
    options = {"data.train_path": train_path, "data.hub_dataset": hub_dataset, "data.source": source}
    given = [option for option, value in options.items() if value is not None]
    if len(given) != 1:
        found = f"{' and '.join(given)} were given" if given else "none was given"
        fix = f"; keep one, e.g. with --{given[-1]} null" if len(given) > 1 else ""
        raise InputError(f"give the training data with exactly one of {', '.join(options)} ({found}{fix})")
    if val_path is not None and train_path is None:
        raise InputError("data.val_path needs data.train_path (with data.hub_dataset use data.hub_val_split)")
    if (hub_config is not None or hub_val_split is not None) and hub_dataset is None:
        raise InputError("data.hub_config and data.hub_val_split need data.hub_dataset")
    if train_path is not None:
        files = FileSource(train_path, val_path)
        files.option_prefix = "data."
        return files
    if hub_dataset is not None:
        return HubSource(hub_dataset, hub_config, hub_train_split, hub_val_split)
    assert source is not None
    return source
