import json
import shutil
from pathlib import Path

import pytest

from services.cognition.knowledge import DEFAULT_CORPUS, CorpusError, load_corpus
from services.runtime.vocabulary import parse_tag


def test_the_corpus_covers_at_least_60_entries_from_35_papers() -> None:
    entries = load_corpus()
    papers = {entry.paper for entry in entries}
    assert len(entries) >= 60
    assert len(papers) >= 35


def test_every_entry_is_complete_and_tagged_from_the_vocabulary() -> None:
    for entry in load_corpus():
        assert entry.insight and entry.algorithm and entry.complexity and entry.implementation_notes
        assert entry.symptoms and all(symptom.strip() for symptom in entry.symptoms)
        assert entry.tags
        for tag in entry.tags:
            parse_tag(tag)


def test_ids_are_content_hashes(tmp_path: Path) -> None:
    first = {entry.id for entry in load_corpus()}
    assert first == {entry.id for entry in load_corpus()}
    assert len(first) == len(load_corpus())

    corpus = tmp_path / "corpus"
    shutil.copytree(DEFAULT_CORPUS, corpus)
    path = corpus / "deltanet-2024.json"
    record = json.loads(path.read_text())
    record["entries"][0]["insight"] += " Edited."
    path.write_text(json.dumps(record))
    edited = {entry.id for entry in load_corpus(corpus)}
    assert len(first - edited) == 1 and len(edited - first) == 1


def _write(corpus: Path, name: str, record: dict) -> Path:
    corpus.mkdir(exist_ok=True)
    path = corpus / name
    path.write_text(json.dumps(record))
    return path


def _record(**changes: object) -> dict:
    entry = {
        "insight": "An idea.",
        "symptoms": ["loss plateaus"],
        "algorithm": "S_t = S_{t-1} + k_t v_t^T",
        "complexity": "O(T d^2)",
        "implementation_notes": "None.",
        "tags": ["update=linear"],
    }
    entry.update(changes)
    return {"paper": "example-2024", "title": "An example", "year": 2024, "entries": [entry]}


def test_an_unknown_tag_is_reported_with_file_and_field(tmp_path: Path) -> None:
    path = _write(tmp_path / "corpus", "example-2024.json", _record(tags=["update=linear", "decay=sometimes"]))
    with pytest.raises(CorpusError) as error:
        load_corpus(tmp_path / "corpus")
    assert str(path) in str(error.value)
    assert "entries[0].tags[1]" in str(error.value)
    assert "sometimes" in str(error.value)


def test_a_missing_field_is_reported_with_file_and_field(tmp_path: Path) -> None:
    record = _record()
    del record["entries"][0]["complexity"]
    path = _write(tmp_path / "corpus", "example-2024.json", record)
    with pytest.raises(CorpusError, match="complexity") as error:
        load_corpus(tmp_path / "corpus")
    assert str(path) in str(error.value)


def test_an_empty_symptom_list_is_refused(tmp_path: Path) -> None:
    _write(tmp_path / "corpus", "example-2024.json", _record(symptoms=[]))
    with pytest.raises(CorpusError, match=r"entries\[0\]\.symptoms"):
        load_corpus(tmp_path / "corpus")


def test_a_file_must_be_named_after_its_paper(tmp_path: Path) -> None:
    _write(tmp_path / "corpus", "other-name.json", _record())
    with pytest.raises(CorpusError, match="named after"):
        load_corpus(tmp_path / "corpus")


def test_a_paper_id_must_end_with_its_year(tmp_path: Path) -> None:
    record = _record()
    record["paper"] = "example-2023"
    _write(tmp_path / "corpus", "example-2023.json", record)
    with pytest.raises(CorpusError, match="must end with its year"):
        load_corpus(tmp_path / "corpus")
