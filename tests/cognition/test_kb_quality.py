"""Retrieval quality against the team's query fixture: the intended paper in the top 5 for at
least 80% of the questions a researcher would ask."""

import json
from pathlib import Path

import pytest

from services.cognition.knowledge import KnowledgeBase, load_corpus
from services.cognition.quality import evaluate, load_queries, main, recall_at

QUERIES = Path(__file__).parent / "queries.json"


def test_the_fixture_has_at_least_30_queries_about_papers_in_the_corpus() -> None:
    queries = load_queries(QUERIES)
    papers = {entry.paper for entry in load_corpus()}
    assert len(queries) >= 30
    assert {paper for _, paper in queries} <= papers


def test_the_intended_paper_is_in_the_top_5_for_80_percent_of_queries(kb: KnowledgeBase) -> None:
    results = evaluate(kb, load_queries(QUERIES))
    misses = [(result.query, result.paper, result.retrieved) for result in results if result.rank is None]
    assert recall_at(results, 5) >= 0.8, misses


def test_the_quality_script_prints_a_table_and_one_json_line(
    small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    queries = tmp_path / "queries.json"
    queries.write_text(
        json.dumps(
            {
                "queries": [
                    {"query": "retention with a fixed decay per head", "paper": "retnet-2023"},
                    {"query": "a paper that is not in this corpus", "paper": "mamba-2023"},
                ]
            }
        )
    )
    assert main(["--queries", str(queries), "--corpus", str(small_corpus)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["rank", "intended", "paper", "query"]
    assert lines[1].split()[:2] == ["1", "retnet-2023"]
    assert lines[2].split()[:2] == ["-", "mamba-2023"]
    assert json.loads(lines[-1]) == {"queries": 2, "entries": 4, "recall@1": 0.5, "recall@5": 0.5}
