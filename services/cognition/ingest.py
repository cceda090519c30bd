"""``kb ingest``: add papers to the literature collection.

Two kinds of input:

- structured paper files (``*.json`` in the corpus schema, see ``corpus/README.md``), stored as
  they are;
- the plain text of a paper (``.txt``, ``.md``, or text extracted from a PDF), from which an
  LLM behind an OpenAI-compatible ``/v1/chat/completions`` endpoint extracts paper records.
  Without an LLM configured, text is refused with a message that says what to do instead.

Ingesting the same content twice adds nothing: entry ids are content hashes, and a text
document's hash is stored with the entries extracted from it, so the LLM is not asked again.
Every LLM exchange (prompt and raw answer) is returned so the caller can log it.
"""

import asyncio
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.cognition.knowledge import CorpusError, Entry, KnowledgeBase, load_paper_file, parse_paper
from services.runtime.llm import Exchange, LLMClient, LLMError
from services.runtime.vocabulary import COMPONENTS

STRUCTURED_SUFFIXES = (".json",)
TEXT_SUFFIXES = (".txt", ".md", ".markdown", ".text")
# Long papers are cut: the abstract, introduction and method carry what an entry needs, and a
# small served model's context is limited.
MAX_PAPER_CHARS = 60_000


class IngestError(ValueError):
    """The input cannot be ingested; the message says why and what to do."""


@dataclass
class IngestReport:
    source: str = ""  # the path that was ingested
    entries: list[Entry] = field(default_factory=list)
    added: int = 0
    exchanges: list[Exchange] = field(default_factory=list)


def _input_files(path: Path) -> list[Path]:
    if not path.exists():
        raise IngestError(f"{path}: no such file or folder")
    if path.is_file():
        return [path]
    # A folder's README describes the folder (the corpus has one), it is not a paper.
    files = sorted(
        p
        for p in path.rglob("*")
        if p.is_file() and p.suffix in STRUCTURED_SUFFIXES + TEXT_SUFFIXES and p.stem.upper() != "README"
    )
    if not files:
        raise IngestError(f"{path}: no paper files ({', '.join(STRUCTURED_SUFFIXES + TEXT_SUFFIXES)})")
    return files


def ingest_path(kb: KnowledgeBase, path: Path, llm: LLMClient | None) -> IngestReport:
    """Ingest a file, or every paper file under a folder (README files excepted)."""
    report = IngestReport(source=str(path))
    for file in _input_files(Path(path)):
        if file.suffix in STRUCTURED_SUFFIXES:
            entries = load_paper_file(file)
            report.added += kb.add_entries(entries, source="ingest")
        else:
            entries = _ingest_text(kb, file, llm, report)
        report.entries.extend(entries)
    return report


def _ingest_text(kb: KnowledgeBase, file: Path, llm: LLMClient | None, report: IngestReport) -> list[Entry]:
    raw = file.read_bytes()
    if raw.startswith(b"%PDF"):
        raise IngestError(
            f"{file} is a PDF; extract its text first (for example `pdftotext {file} paper.txt`) and ingest that"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise IngestError(f"{file}: not UTF-8 text") from None
    source_sha256 = hashlib.sha256(raw).hexdigest()
    already = kb.entries_from_source(source_sha256)
    if already:
        return already
    if llm is None:
        raise IngestError(
            f"{file}: extracting entries from paper text needs an LLM; set ASI_LLM_URL (an "
            "OpenAI-compatible URL ending in /v1) or pass --llm-url, or write the entries as a JSON "
            "paper file (schema: services/cognition/corpus/README.md) and ingest that"
        )
    exchange = extract_with_llm(text, llm)
    report.exchanges.append(exchange)
    entries = parse_extraction(exchange, f"{file} (LLM extraction)")
    report.added += kb.add_entries(entries, source="ingest", source_sha256=source_sha256)
    return entries


# --- the LLM extraction ----------------------------------------------------------------------

PAPER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["paper", "title", "year", "entries"],
    "properties": {
        "paper": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]*[a-z0-9]$"},
        "title": {"type": "string"},
        "year": {"type": "integer"},
        "entries": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["insight", "symptoms", "algorithm", "complexity", "implementation_notes", "tags"],
                "properties": {
                    "insight": {"type": "string"},
                    "symptoms": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                    "algorithm": {"type": "string"},
                    "complexity": {"type": "string"},
                    "implementation_notes": {"type": "string"},
                    "tags": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "string",
                            "enum": [f"{axis}={value}" for axis, values in COMPONENTS.items() for value in values],
                        },
                    },
                },
            },
        },
    },
}

SYSTEM_PROMPT = """You read research papers about linear attention and recurrent token mixers and \
write knowledge-base entries for a system that designs new mixers. Answer with one JSON object \
matching the given schema: the paper id (short lowercase slug with dashes ending in the year, \
e.g. "gated-deltanet-2025"), title, year, and one to three entries. Each entry holds one design \
insight in your own words (do not copy sentences); the symptoms it addresses, phrased as a \
training analyst would observe them (for example "low MQAR accuracy at long gaps", "loss \
plateaus", "unstable state norm", "poor selective copying", "validation loss worse than \
baseline"); the algorithm with its equations in plain text; the complexity; implementation \
notes; and component tags, only from this vocabulary (axis=value):
{vocabulary}"""


def _vocabulary_text() -> str:
    return "\n".join(f"  {axis}: {', '.join(values)}" for axis, values in COMPONENTS.items())


def extract_with_llm(text: str, llm: LLMClient) -> Exchange:
    """Ask the LLM for a paper record; returns the exchange with the raw answer."""
    system = SYSTEM_PROMPT.format(vocabulary=_vocabulary_text())
    try:
        return asyncio.run(llm.ask_json(system, text[:MAX_PAPER_CHARS], schema_name="paper_record",
                                        schema=PAPER_SCHEMA))
    except LLMError as error:
        raise IngestError(str(error)) from None


def parse_extraction(exchange: Exchange, source: str) -> list[Entry]:
    """Validate the LLM's answer exactly like a corpus file."""
    try:
        return parse_paper(exchange.answer, source)
    except CorpusError as error:
        raise IngestError(str(error)) from None
