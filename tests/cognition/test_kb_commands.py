"""``asi-arch kb search|ingest`` through the real argument parser and a real store."""

import argparse
import json
import shutil
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from services.cognition.commands import add_parsers
from services.cognition.ingest import IngestReport
from services.cognition.knowledge import DEFAULT_CORPUS


def _run(argv: list[str], on_ingested=None) -> int:
    parser = argparse.ArgumentParser(prog="asi-arch")
    add_parsers(parser.add_subparsers(dest="command", required=True), on_ingested)
    args = parser.parse_args(argv)
    return args.func(args)


def test_search_prints_one_json_object(built_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = _run(
        [
            "kb",
            "search",
            "combine a forget gate with the delta rule",
            "-k",
            "3",
            "--json",
            "--data-dir",
            str(built_store),
        ]
    )
    assert code == 0
    output = json.loads(capsys.readouterr().out)
    results = output["results"]
    assert len(results) == 3
    assert {"id", "paper", "title", "score", "tags"} <= set(results[0])
    assert "gated-deltanet-2025" in {result["paper"] for result in results}


def test_search_builds_a_missing_collection_from_the_corpus(
    store_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A store whose literature collection is gone is rebuilt on first use.
    client = QdrantClient(path=str(store_copy / "qdrant"))
    client.delete_collection("cognition")
    client.close()
    assert _run(["kb", "search", "selective copying", "--json", "--data-dir", str(store_copy)]) == 0
    captured = capsys.readouterr()
    assert "corpus entries added" in captured.err
    assert json.loads(captured.out)["results"]


def test_search_rejects_an_unknown_tag(built_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["kb", "search", "x", "--tag", "decay=never", "--data-dir", str(built_store)]) == 2
    assert "decay" in capsys.readouterr().err


def test_ingest_reports_entries_and_calls_the_listener(
    store_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    papers = tmp_path / "papers"
    papers.mkdir()
    shutil.copy(DEFAULT_CORPUS / "retnet-2023.json", papers)
    shutil.copy(DEFAULT_CORPUS / "README.md", papers)  # describes the folder; not a paper
    reports: list[IngestReport] = []
    code = _run(["kb", "ingest", str(papers), "--json", "--data-dir", str(store_copy)],
                lambda report, data_dir: reports.append(report))
    assert code == 0
    output = json.loads(capsys.readouterr().out)
    assert output["added"] == 0  # already in the store: re-ingesting the same content is idempotent
    assert {entry["paper"] for entry in output["entries"]} == {"retnet-2023"}
    assert [e.id for e in reports[0].entries] == [entry["id"] for entry in output["entries"]]


def test_ingesting_text_without_an_llm_says_so(
    store_copy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ASI_LLM_URL", raising=False)
    text = Path(__file__).parent / "recorded" / "random-feature-attention.txt"
    assert _run(["kb", "ingest", str(text), "--data-dir", str(store_copy)]) == 2
    assert "needs an LLM" in capsys.readouterr().err
