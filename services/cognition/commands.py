"""``asi-arch kb search|ingest``.

The commands work on their own: they open the store in the data dir (local mode) or a Qdrant
server (``--url``), building the literature collection from the corpus on first use.  Local
mode locks its folder, so while the cognition service runs they must use its server instead.
"""

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from services.cognition.ingest import IngestReport, ingest_path
from services.cognition.knowledge import KINDS, KnowledgeBase
from services.runtime.llm import LLMClient

DEFAULT_DATA_DIR = Path(".asi")

IngestListener = Callable[[IngestReport, Path], None]  # the report and the data dir


def add_parsers(subparsers: argparse._SubParsersAction, on_ingested: IngestListener | None = None) -> None:
    """Register ``kb``; ``on_ingested`` is called with the report of every successful ingest."""
    kb = subparsers.add_parser("kb", help="search or extend the knowledge base")
    commands = kb.add_subparsers(dest="kb_command", required=True)

    search = commands.add_parser("search", help="entries nearest in meaning to a query")
    search.add_argument("query")
    search.add_argument("-k", type=int, default=5, help="number of results (default 5)")
    search.add_argument("--kind", action="append", choices=KINDS, help="cognition or experience (default both)")
    search.add_argument("--tag", action="append", default=[], help="component tag axis=value; repeat to require all")
    search.add_argument("--paper", help="only this paper's entries")
    search.add_argument("--run", dest="run_id", help="only this run's experience")
    _add_store_arguments(search)
    search.set_defaults(func=search_command)

    ingest = commands.add_parser("ingest", help="add paper files (JSON) or paper text (needs an LLM)")
    ingest.add_argument("path", type=Path, help="a file or a folder of paper files")
    ingest.add_argument("--llm-url", help="OpenAI-compatible base URL ending in /v1 (default $ASI_LLM_URL)")
    ingest.add_argument("--llm-model", help="model name (default $ASI_LLM_MODEL)")
    _add_store_arguments(ingest)
    ingest.set_defaults(func=lambda args: ingest_command(args, on_ingested))


def _add_store_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="local store (default .asi)")
    parser.add_argument("--url", help="a Qdrant server instead of the local store")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def _open(args: argparse.Namespace) -> KnowledgeBase:
    try:
        kb = KnowledgeBase.open(url=args.url) if args.url else KnowledgeBase.open(data_dir=args.data_dir)
    except RuntimeError as error:
        # qdrant-client's local mode refuses a folder another process holds.
        raise SystemExit(
            f"error: cannot open the store in {args.data_dir / 'qdrant'} ({error}); if the cognition "
            "service is running, it holds the store: stop it or point --url at a Qdrant server"
        ) from None
    added = kb.ensure_built()
    if added:
        print(f"built the knowledge base: {added} corpus entries added", file=sys.stderr)
    return kb


def search_command(args: argparse.Namespace) -> int:
    kb = _open(args)
    try:
        hits = kb.search(
            args.query,
            k=args.k,
            kinds=tuple(args.kind or KINDS),
            tags=args.tag or None,
            paper=args.paper,
            run_id=args.run_id,
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        kb.close()
    if args.json:
        results = [
            {key: getattr(hit, key) for key in ("id", "kind", "paper", "title", "score", "tags")} for hit in hits
        ]
        print(json.dumps({"results": results}))
        return 0
    for hit in hits:
        print(f"{hit.score:6.3f}  {hit.paper}  {hit.title}")
        print(f"        {', '.join(hit.tags)}")
        print(f"        {hit.text}")
    return 0


def ingest_command(args: argparse.Namespace, on_ingested: IngestListener | None = None) -> int:
    url = args.llm_url or os.environ.get("ASI_LLM_URL", "")
    llm = LLMClient(url, args.llm_model or os.environ.get("ASI_LLM_MODEL", "default"),
                    api_key=os.environ.get("ASI_LLM_API_KEY") or "unused") if url else None
    kb = _open(args)
    try:
        report = ingest_path(kb, args.path, llm)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        kb.close()
    if on_ingested is not None:
        on_ingested(report, args.data_dir)
    if args.json:
        entries = [{key: getattr(e, key) for key in ("id", "paper", "title", "tags")} for e in report.entries]
        exchanges = [asdict(exchange) for exchange in report.exchanges]
        print(json.dumps({"added": report.added, "entries": entries, "llm_exchanges": exchanges}))
        return 0
    print(f"{len(report.entries)} entries ingested, {report.added} new")
    for entry in report.entries:
        print(f"  {entry.id}  {entry.paper}  {entry.title}")
    return 0
