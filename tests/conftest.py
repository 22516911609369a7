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
