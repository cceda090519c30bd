"""Retrieval quality against the team's query fixture: the intended paper in the top 5 for at
least 80% of the questions a researcher would ask."""

from pathlib import Path

from services.cognition.knowledge import KnowledgeBase, load_corpus
from services.cognition.quality import evaluate, load_queries, recall_at

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
