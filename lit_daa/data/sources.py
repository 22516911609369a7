"""Where preference rows come from: local files, a folder saved by `datasets`, or a hub dataset.

A source returns raw rows as `datasets.Dataset`s (any schema); `schemas` turns them into text triples. Each
source also says how error messages name a split (`split_name`) and a row (`row_label`).
"""

from __future__ import annotations

import json
from pathlib import Path

import datasets
from datasets import Dataset, DatasetDict

from lit_daa.errors import InputError

TRAIN, VALIDATION = "train", "validation"


class PreferenceSource:
    """Base class: a train split and an optional validation split of preference rows.

    Subclasses set `name` (what messages call the source) and implement `train` and `validation`.
    """

    name: str = "preference data"

    def train(self) -> Dataset:
        raise NotImplementedError

    def validation(self) -> Dataset | None:
        """The validation split, or None to carve one out of `train` (see `PreferenceDataModule.val_fraction`)."""
        return None

    def attach(self, model_name: str) -> None:
        """Told the model the run trains (the data module's tokenizer, i.e. `model.policy`) before loading.

        Sources that generate data from a model (e.g. samples of the reference) use it; files ignore it."""

    def split_name(self, split: str) -> str:
        """What messages call one split (`TRAIN` or `VALIDATION`), e.g. a file path."""
        return f"{self.name} ({split})"

    def row_label(self, split: str, index: int) -> str:
        """What messages call the row at 0-based `index` of `split`; rows are counted from 1."""
        return f"row {index + 1}"


class FileSource(PreferenceSource):
    """Rows from local files: .jsonl, .json or .parquet, or a folder written by `Dataset(Dict).save_to_disk`.

    Files are read with `datasets.load_dataset("json"/"parquet")`, so `datasets` caches them (and the
    tokenized result). A folder holding a DatasetDict gives its "train" split, and its "validation" (or "test")
    split when `val_path` is not given. JSONL rows are named by their line number; other rows by their
    position counted from 1.

    Args:
        train_path: training rows (a file or a save_to_disk folder).
        val_path: validation rows; None: the train folder's validation split if it has one, else carved out of
            the training rows.
    """

    # How messages name the two path options; the data module sets "data." when it builds the source itself.
    option_prefix = "data.source."

    def __init__(self, train_path: str, val_path: str | None = None) -> None:
        self.train_path = train_path
        self.val_path = val_path
        self.name = train_path
        self._line_numbers: dict[str, list[int]] = {}

    # The option messages name for train_path; the data module points it at e.g. data.test_path for extra sets.
    train_option: str | None = None

    def train(self) -> Dataset:
        return self._load(self.train_path, self.train_option or f"{self.option_prefix}train_path", TRAIN)

    def validation(self) -> Dataset | None:
        if self.val_path is not None:
            return self._load(self.val_path, f"{self.option_prefix}val_path", VALIDATION)
        if self._saved_splits(self.train_path):  # a DatasetDict folder may hold a validation split
            return self._load(self.train_path, f"{self.option_prefix}train_path", VALIDATION, required=False)
        return None

    def split_name(self, split: str) -> str:
        path = self.val_path if split == VALIDATION and self.val_path is not None else self.train_path
        return path if self._saved_splits(path) is None else f"{path} ({split} split)"

    def row_label(self, split: str, index: int) -> str:
        path = self.val_path if split == VALIDATION and self.val_path is not None else self.train_path
        lines = self._line_numbers.get(path)
        return f"line {lines[index]}" if lines is not None else f"row {index + 1}"

    def _saved_splits(self, path: str) -> list[str] | None:
        """The splits of a save_to_disk DatasetDict folder; [] for a saved Dataset; None for a file."""
        folder = Path(path)
        if (folder / "dataset_dict.json").is_file():
            return json.loads((folder / "dataset_dict.json").read_text())["splits"]
        return [] if (folder / "dataset_info.json").is_file() else None

    def _load(self, path: str, option: str, split: str, required: bool = True) -> Dataset | None:
        file = Path(path).expanduser()
        if not file.exists():
            raise InputError(f"{option} '{path}' does not exist")
        if file.is_dir():
            return self._load_folder(file, path, option, split, required)
        suffix = file.suffix.lower()
        if suffix == ".jsonl":
            self._line_numbers[path] = scan_jsonl(file, path)
            if not self._line_numbers[path]:
                raise InputError(f"{path} has no rows")
        builder = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}.get(suffix)
        if builder is None:
            raise InputError(
                f"{option} '{path}' is not a .jsonl, .json or .parquet file nor a folder saved with save_to_disk"
            )
        try:
            return datasets.load_dataset(builder, data_files=str(file.resolve()), split="train")
        except Exception as err:  # datasets wraps parser errors in several types; all mean an unreadable file
            if suffix == ".json":
                describe_json_structure(file, path)  # names the element at fault, when one is
            if suffix == ".jsonl":
                find_duplicate_key(file, path)  # Arrow's reader refuses a key given twice without naming the line
            raise InputError(f"{option} '{path}' could not be read as {builder} ({_first_line(err)})") from None

    def _load_folder(self, folder: Path, path: str, option: str, split: str, required: bool) -> Dataset | None:
        splits = self._saved_splits(path)
        if splits is None:
            raise InputError(f"{option} '{path}' is a folder but not one written by datasets' save_to_disk")
        loaded = datasets.load_from_disk(str(folder))
        if isinstance(loaded, Dataset):
            return loaded
        assert isinstance(loaded, DatasetDict)
        wanted = ("train",) if split == TRAIN else ("validation", "test")
        for name in wanted:
            if name in loaded:
                return loaded[name]
        if not required:
            return None
        raise InputError(f"{option} '{path}' has no {' or '.join(wanted)} split (splits found: {', '.join(loaded)})")


class HubSource(PreferenceSource):
    """Rows from `datasets.load_dataset(name, config, split=...)`: a hub dataset id or a local folder of data files.

    Args:
        name: hub dataset id (e.g. "Anthropic/hh-rlhf") or a local folder of data files.
        config: the dataset's configuration name, if it has several (e.g. "comparisons").
        train_split: split to train on.
        val_split: split to validate on; None: carved out of the training split.
    """

    def __init__(
        self, name: str, config: str | None = None, train_split: str = "train", val_split: str | None = None
    ) -> None:
        self.dataset_name = name
        self.config = config
        self.train_split = train_split
        self.val_split = val_split
        self.name = f"{name}" + (f" ({config})" if config else "")

    def train(self) -> Dataset:
        return self._load(self.train_split)

    def validation(self) -> Dataset | None:
        return None if self.val_split is None else self._load(self.val_split)

    def split_name(self, split: str) -> str:
        return f"{self.name} split '{self.train_split if split == TRAIN else self.val_split}'"

    def _load(self, split: str) -> Dataset:
        try:
            loaded = datasets.load_dataset(self.dataset_name, self.config, split=split)
        except Exception as err:  # not found, offline, unknown split or config: the first line says which
            raise InputError(
                f"data.hub_dataset '{self.dataset_name}' split '{split}' could not be loaded ({_first_line(err)})"
            ) from None
        if not isinstance(loaded, Dataset):
            raise InputError(f"data.hub_dataset '{self.dataset_name}' split '{split}' is not a map-style dataset")
        return loaded


def scan_jsonl(file: Path, name: str) -> list[int]:
    """Check every line of a JSONL file parses as a JSON object; return the line numbers of the records.

    Blank lines are skipped (as `datasets` does), so record i is on line `result[i]` (counted from 1).
    """
    lines: list[int] = []
    number = 0
    try:
        with file.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                _check_line(line, number, name, lines)
    except UnicodeDecodeError:
        raise InputError(f"{name} line {number + 1} is not UTF-8 text") from None
    return lines


def _check_line(line: str, number: int, name: str, lines: list[int]) -> None:
    if not line.strip():
        return
    try:
        record = json.loads(line.rstrip("\r\n"))  # so the error's column counts within this line
    except json.JSONDecodeError as err:
        raise InputError(f"{name} line {number} is not valid JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(record, dict):
        raise InputError(f"{name} line {number} is a JSON {type(record).__name__}, not an object")
    lines.append(number)


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """`json.loads` object hook: the object as a dict, or `_DuplicateKey` for a key it holds twice."""
    record = dict(pairs)
    if len(record) < len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return record


def find_duplicate_key(file: Path, name: str) -> None:
    """Raise one sentence naming the first line of a JSONL file with a key given twice in one object.

    Read only after loading failed (Arrow refuses such a line, while `json.loads` alone keeps the last value
    silently), so the usual scan stays at plain `json.loads` speed.
    """
    with file.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                json.loads(line, object_pairs_hook=_unique_keys)
            except _DuplicateKey as duplicate:
                raise InputError(
                    f"{name} line {number} has the key '{duplicate.key}' twice in one object; keep one of them"
                ) from None


def describe_json_structure(file: Path, name: str) -> None:
    """Raise one sentence naming what is wrong with a .json file's structure (read only after loading failed)."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InputError(f"{name} is not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})") from None
    except UnicodeDecodeError:
        raise InputError(f"{name} is not UTF-8 text") from None
    if isinstance(data, list):
        for i, element in enumerate(data, start=1):
            if not isinstance(element, dict):
                kind = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean"}
                what = kind.get(type(element), "null" if element is None else type(element).__name__)
                raise InputError(
                    f"{name} element {i} is {what}, expected an object with prompt/chosen/rejected "
                    "(or the fields of data.schema)"
                )
    elif not isinstance(data, dict):
        raise InputError(f"{name} holds a JSON {type(data).__name__}; expected an array of objects, one per pair")


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
