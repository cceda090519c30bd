"""Retrieval quality of the literature collection: recall@1 and recall@5 over a fixture of queries.

``python -m services.cognition.quality`` builds a fresh store from the corpus in a temporary
folder, asks every query in ``tests/cognition/queries.json`` and prints a table (one row per
query: the rank of the intended paper, or ``-`` when it is not in the top 5) followed by one JSON
line with the measured figures.  A hit counts when the intended paper is among the papers of
the top ``k`` entries (entries, not distinct papers: a paper with two matching entries takes two
places).
"""

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from services.cognition.knowledge import DEFAULT_CORPUS, KnowledgeBase

DEFAULT_QUERIES = Path(__file__).resolve().parents[2] / "tests" / "cognition" / "queries.json"
DEPTH = 5


@dataclass(frozen=True)
class QueryResult:
    query: str
    paper: str
    retrieved: list[str]

    @property
    def rank(self) -> int | None:
        """1-based rank of the intended paper among the retrieved entries, or None."""
        for position, paper in enumerate(self.retrieved, start=1):
            if paper == self.paper:
                return position
        return None


def load_queries(path: Path) -> list[tuple[str, str]]:
    record = json.loads(Path(path).read_text(encoding="utf-8"))
    return [(item["query"], item["paper"]) for item in record["queries"]]


def evaluate(kb: KnowledgeBase, queries: list[tuple[str, str]], depth: int = DEPTH) -> list[QueryResult]:
    return [
        QueryResult(query, paper, [hit.paper for hit in kb.search(query, k=depth, kinds=("cognition",))])
        for query, paper in queries
    ]


def recall_at(results: list[QueryResult], k: int) -> float:
    found = sum(1 for result in results if result.rank is not None and result.rank <= k)
    return found / len(results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.cognition.quality", description=__doc__)
    parser.add_argument("--queries", type=Path, default=DEFAULT_QUERIES)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    args = parser.parse_args(argv)
    if not args.queries.exists():
        print(f"error: query fixture {args.queries} not found; pass --queries", file=sys.stderr)
        return 2
    queries = load_queries(args.queries)
    with tempfile.TemporaryDirectory(prefix="asi-kb-quality-") as data_dir:
        kb = KnowledgeBase.open(data_dir=Path(data_dir))
        try:
            entries = kb.ensure_built(args.corpus)
            results = evaluate(kb, queries)
        finally:
            kb.close()
    width = max(len(result.paper) for result in results)
    print(f"{'rank':>4}  {'intended paper':<{width}}  query")
    for result in results:
        rank = "-" if result.rank is None else str(result.rank)
        print(f"{rank:>4}  {result.paper:<{width}}  {result.query}")
    summary = {
        "queries": len(results),
        "entries": entries,
        "recall@1": round(recall_at(results, 1), 4),
        "recall@5": round(recall_at(results, 5), 4),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
