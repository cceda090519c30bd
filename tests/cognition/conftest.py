"""One real store, built from the whole corpus once per test session: embedding the corpus is
the slow part, so tests open this store (cheap) instead of building their own."""

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from services.cognition.knowledge import DEFAULT_CORPUS, KnowledgeBase

# Two cores shared with other engineers' test runs: one thread is enough for MiniLM.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def built_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("kb-built")
    kb = KnowledgeBase.open(data_dir=data_dir)
    try:
        kb.ensure_built()
    finally:
        kb.close()
    return data_dir


@pytest.fixture
def kb(built_store: Path) -> Iterator[KnowledgeBase]:
    """The session's built store, opened for one test (local mode allows one opener at a time)."""
    opened = KnowledgeBase.open(data_dir=built_store)
    yield opened
    opened.close()


@pytest.fixture
def store_copy(built_store: Path, tmp_path: Path) -> Path:
    """A private copy of the built store for tests that add literature."""
    copy = tmp_path / "kb"
    shutil.copytree(built_store, copy)
    return copy


@pytest.fixture
def small_corpus(tmp_path: Path) -> Path:
    """Two real corpus papers, for tests that build a store from scratch."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for paper in ("deltanet-2024", "retnet-2023"):
        shutil.copy(DEFAULT_CORPUS / f"{paper}.json", corpus)
    return corpus
