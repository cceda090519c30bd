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

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from services.cognition.knowledge import CorpusError, Entry, KnowledgeBase, load_paper_file, parse_paper
from services.runtime.vocabulary import COMPONENTS

STRUCTURED_SUFFIXES = (".json",)
TEXT_SUFFIXES = (".txt", ".md", ".markdown", ".text")
# Long papers are cut: the abstract, introduction and method carry what an entry needs, and a
# small served model's context is limited.
MAX_PAPER_CHARS = 60_000


class IngestError(ValueError):
    """The input cannot be ingested; the message says why and what to do."""


@dataclass(frozen=True)
class LLMConfig:
    """An OpenAI-compatible server. ``base_url`` ends in ``/v1`` as for the OpenAI client."""

    base_url: str
    model: str
    api_key: str | None = None
    timeout_s: float = 300.0

    @classmethod
    def from_env(cls, base_url: str | None = None, model: str | None = None) -> "LLMConfig | None":
        """``ASI_LLM_BASE_URL`` (unset: no LLM), ``ASI_LLM_MODEL``, ``ASI_LLM_API_KEY``; arguments win."""
        base_url = base_url or os.environ.get("ASI_LLM_BASE_URL")
        if not base_url:
            return None
        return cls(
            base_url=base_url,
            model=model or os.environ.get("ASI_LLM_MODEL", "default"),
            api_key=os.environ.get("ASI_LLM_API_KEY"),
        )


@dataclass(frozen=True)
class LLMExchange:
    """One request to the LLM and its raw answer, for the event log."""

    model: str
    messages: list[dict[str, str]]
    response: str


@dataclass
class IngestReport:
    entries: list[Entry] = field(default_factory=list)
    added: int = 0
    exchanges: list[LLMExchange] = field(default_factory=list)


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


def ingest_path(kb: KnowledgeBase, path: Path, llm: LLMConfig | None) -> IngestReport:
    """Ingest a file, or every paper file under a folder (README files excepted)."""
    report = IngestReport()
    for file in _input_files(Path(path)):
        if file.suffix in STRUCTURED_SUFFIXES:
            entries = load_paper_file(file)
            report.added += kb.add_entries(entries, source="ingest")
        else:
            entries = _ingest_text(kb, file, llm, report)
        report.entries.extend(entries)
    return report


def _ingest_text(kb: KnowledgeBase, file: Path, llm: LLMConfig | None, report: IngestReport) -> list[Entry]:
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
            f"{file}: extracting entries from paper text needs an LLM; set ASI_LLM_BASE_URL (an "
            "OpenAI-compatible URL ending in /v1) or pass --llm-url, or write the entries as a JSON "
            "paper file (schema: services/cognition/corpus/README.md) and ingest that"
        )
    exchange = extract_with_llm(text, llm)
    report.exchanges.append(exchange)
    entries = parse_extraction(exchange.response, f"{file} (LLM extraction)")
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


def extract_with_llm(text: str, llm: LLMConfig) -> LLMExchange:
    """Ask the LLM for a paper record; returns the exchange with the raw answer."""
    messages = [
        {"role": "system", "content": SYSTEM_PROMPT.format(vocabulary=_vocabulary_text())},
        {"role": "user", "content": text[:MAX_PAPER_CHARS]},
    ]
    body = {
        "model": llm.model,
        "messages": messages,
        "temperature": 0,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "paper_record", "schema": PAPER_SCHEMA},
        },
    }
    headers = {"Authorization": f"Bearer {llm.api_key}"} if llm.api_key else {}
    url = llm.base_url.rstrip("/") + "/chat/completions"
    try:
        response = httpx.post(url, json=body, headers=headers, timeout=llm.timeout_s)
        response.raise_for_status()
        content = response.json()["choices"][0]["message"]["content"]
    except (httpx.HTTPError, KeyError, IndexError, ValueError) as error:
        raise IngestError(f"LLM request to {url} failed: {error}") from None
    return LLMExchange(model=llm.model, messages=messages, response=content)


def parse_extraction(content: str, source: str) -> list[Entry]:
    """Validate the LLM's answer exactly like a corpus file. Tolerates a Markdown code fence,
    which servers without structured output tend to add."""
    fenced = re.fullmatch(r"\s*```(?:json)?\s*(.*?)\s*```\s*", content, flags=re.DOTALL)
    try:
        record = json.loads(fenced.group(1) if fenced else content)
    except json.JSONDecodeError as error:
        raise IngestError(f"{source}: the answer is not JSON: {error}") from None
    try:
        return parse_paper(record, source)
    except CorpusError as error:
        raise IngestError(str(error)) from None
