"""Shared fixtures: a session cache for embedded models, so tests never write to the home folder."""

from __future__ import annotations

import os

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _embedded_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ["LIT_DAA_CACHE"] = str(tmp_path_factory.mktemp("lit_daa_cache"))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # one thread: at these tiny sizes a second thread only adds synchronisation (measured ~100x slower when loaded)
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The synthetic world's word tokenizer saved as a folder: loaded like any model's tokenizer."""
    from lit_daa.synthetic.tokenizer import build_word_tokenizer
    from lit_daa.synthetic.world import vocabulary

    folder = tmp_path_factory.mktemp("word-tokenizer")
    build_word_tokenizer(vocabulary()).save_pretrained(folder)
    return str(folder)


@pytest.fixture
def datasets_cache(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A per-test `datasets` cache, so one test's cached map never answers another's."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
