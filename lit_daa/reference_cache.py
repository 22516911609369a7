"""The reference cache: every pair's reference log-probs computed once, stored, and reused by every run that
shares the reference, the tokenized data and the precision (a whole beta x objective sweep).

Key: sha256 over (the reference's weight files: names, sizes and modification times; its dtype; the tokenized
pairs' token ids, i.e. the data after truncation, so `max_length` is in it; the split name). Beta, the objective,
the optimizer and the layout are not in it: changing them reuses the cache. The values are (n, 2) float32 tensors
[ref_chosen, ref_rejected] in dataset order, one file per key under `$LIT_DAA_CACHE/reference_logps/`, written
atomically. A run that uses them (`model.cached_reference`) never loads the reference model for training.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow.compute as pc
import torch
from datasets import Dataset
from torch import nn

from lit_daa.data.tokenize import REFERENCE_COLUMNS
from lit_daa.layouts import Layout, to_device
from lit_daa.logps import batch_logps
from lit_daa.models import resolve_model
from lit_daa.synthetic.model import cache_root

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".json")


def cache_dir() -> Path:
    return cache_root() / "reference_logps"


def weights_fingerprint(name_or_path: str) -> str:
    """Names, sizes and modification times of a model folder's weight and config files (hashing 14 GB of weights
    on every run would cost more than it protects against); a hub id that is not a local folder hashes its name."""
    folder = Path(resolve_model(name_or_path, "model.reference"))
    h = hashlib.sha256()
    if folder.is_dir():
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.suffix in WEIGHT_SUFFIXES:
                stat = path.stat()
                h.update(f"{path.relative_to(folder)}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    else:
        h.update(f"hub:{name_or_path}".encode())
    return h.hexdigest()


def data_fingerprint(dataset: Dataset) -> str:
    """The tokenized pairs' content: every token id of prompt, chosen and rejected, and the row indices."""
    h = hashlib.sha256()
    table = dataset.with_format("arrow")[:]
    for column in ("index", "prompt_ids", "chosen_ids", "rejected_ids"):
        values = table.column(column)
        flat = pc.list_flatten(values) if column != "index" else values
        h.update(column.encode())
        h.update(flat.to_numpy(zero_copy_only=False).tobytes())
        if column != "index":
            h.update(pc.list_value_length(values).to_numpy(zero_copy_only=False).tobytes())
    return h.hexdigest()


@dataclass
class CacheResult:
    """What `ReferenceCache.attach` did for one split: the file, whether it was found or computed, and how long."""

    split: str
    path: Path
    hit: bool
    seconds: float
    pairs: int
    kind: str = "pairs"  # "rows" for unpaired rows (each with its mismatched completion)


class ReferenceCache:
    """Attach cached reference log-probs to datasets, computing (and storing) them on a miss.

    Args:
        reference: the reference model's name or folder (the rule's: model.reference, else model.policy).
        dtype: the dtype the reference computes in (part of the key).
        load: loads the reference model on a miss (in eval mode, on the scoring device).
        layout: how pairs are laid out for scoring (not in the key: every layout gives the same log-probs).
        batch_size: pairs per forward on a miss.
    """

    def __init__(
        self, reference: str, dtype: str, load: callable, layout: Layout, batch_size: int = 32, pad_token_id: int = 0
    ) -> None:
        self.reference, self.dtype, self.load = reference, dtype, load
        self.layout, self.batch_size, self.pad_token_id = layout, batch_size, pad_token_id
        self._model: nn.Module | None = None
        self._weights = weights_fingerprint(reference)

    def key(self, dataset: Dataset, split: str) -> str:
        parts = f"{self._weights}|{self.dtype}|{data_fingerprint(dataset)}|{split}|v1"
        return hashlib.sha256(parts.encode()).hexdigest()[:32]

    def attach(self, dataset: Dataset, split: str) -> tuple[Dataset, CacheResult]:
        """`dataset` with `ref_chosen_logps` and `ref_rejected_logps` columns from the cache (computed on a miss)."""
        start = time.perf_counter()
        path = cache_dir() / f"{self.key(dataset, split)}.pt"
        hit = path.is_file()
        values = torch.load(path, weights_only=True) if hit else self._compute(dataset)
        if not hit:
            _save_atomically(values, path)
        if all(c in dataset.column_names for c in REFERENCE_COLUMNS):
            dataset = dataset.remove_columns(list(REFERENCE_COLUMNS))
        for i, column in enumerate(REFERENCE_COLUMNS):
            dataset = dataset.add_column(column, values[:, i].tolist())
        kind = "rows" if "label" in dataset.column_names else "pairs"
        return dataset, CacheResult(split, path, hit, time.perf_counter() - start, len(dataset), kind)

    @torch.no_grad()
    def _compute(self, dataset: Dataset) -> torch.Tensor:
        if self._model is None:
            self._model = self.load(self.reference).eval()
        device = next(self._model.parameters()).device
        out = []
        rows = dataset.select_columns(["index", "prompt_ids", "chosen_ids", "rejected_ids"])
        for start in range(0, len(rows), self.batch_size):
            chunk = rows[start : start + self.batch_size]
            pairs = [dict(zip(chunk, values, strict=True)) for values in zip(*chunk.values(), strict=True)]
            batch = to_device(self.layout.collate(pairs, self.pad_token_id), device)
            sums, _ = batch_logps(self._model, batch)
            b = len(pairs)
            out.append(torch.stack([sums[:b], sums[b:]], dim=1).float().cpu())
        return torch.cat(out) if out else torch.zeros(0, 2)

    def release(self) -> None:
        """Free the reference model loaded for a miss."""
        self._model = None


def _save_atomically(values: torch.Tensor, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    os.close(fd)
    torch.save(values, tmp)
    os.replace(tmp, path)


def fill_reference_cache(
    datamodule: object, reference: str, dtype: str, device: torch.device, load: callable
) -> list[CacheResult]:
    """Give every split of a `PreferenceDataModule` its cached reference log-probs (computing what is missing).

    Splits that already carry `ref_chosen_logps` and `ref_rejected_logps` columns (the user's own) are kept.
    """
    cache = ReferenceCache(
        reference,
        dtype,
        load=lambda name: load(name).to(device),
        layout=datamodule.layout,
        batch_size=datamodule.eval_batch_size,
        pad_token_id=datamodule.tokenizer.pad_token_id,
    )
    try:
        return datamodule.attach_reference_logps(cache)
    finally:
        cache.release()


def describe(results: list[CacheResult]) -> str:
    """One line per split: found or computed, where, how long."""
    return "\n".join(
        f"reference log-probs of {r.pairs} {r.split} {r.kind}: {'found in' if r.hit else 'computed into'} {r.path} "
        f"({r.seconds:.1f} s)"
        for r in results
    )
