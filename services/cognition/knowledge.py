"""The knowledge base: literature entries (``cognition``) and the system's own experience
(``experience``), embedded and stored in Qdrant.

Every entry is identified by a hash of its content, and its Qdrant point id is a UUID derived
from that hash, so writing the same entry twice is harmless: re-ingesting a paper, rebuilding
from the corpus, or the analyst's entries replayed from the event log all converge on the
same store.

Search is hybrid.  Each point carries three dense named vectors, because researchers ask in
different ways: by *design idea* ("use a delta rule with a gate": ``insight``, the title and
insight), by *symptom* ("recall collapses at long gaps": ``symptoms``) and by *mechanism*
("Householder products": ``algorithm``, the algorithm and implementation notes).  The best of
the three cosine similarities counts, plus a small weight times a sparse lexical score
(``terms``, BM25-style with Qdrant's IDF) that recovers specific names the embedding blurs.
"""

import hashlib
import json
import re
import threading
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from qdrant_client import QdrantClient
from qdrant_client import models as qm

from services.cognition import embedder, terms
from services.runtime.vocabulary import parse_tag

DEFAULT_CORPUS = Path(__file__).resolve().parent / "corpus"
KINDS = ("cognition", "experience")
DENSE_VECTORS = ("insight", "symptoms", "algorithm")
SPARSE_VECTOR = "terms"
# Weight of the lexical score beside the best cosine similarity (which lies in [-1, 1]); a
# strong term match adds about 0.3 to 0.6.  Measured with ``python -m services.cognition.quality``.
LEXICAL_WEIGHT = 0.05
# Stable namespace so that point ids are the same on every machine and in every run.
POINT_NAMESPACE = uuid.UUID("5b0b5d0e-3c1f-4a57-9a57-6b2f3f1c7e21")
PAPER_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]*[a-z0-9]$")
# How many candidates each named vector contributes before every candidate is scored exactly
# on every vector; generous, because brute force over a few hundred points costs nothing.
CANDIDATES_PER_VECTOR = 50
EXCERPT_CHARS = 280


class CorpusError(ValueError):
    """A corpus or ingested entry file does not match the schema; the message names file and field."""


@dataclass(frozen=True)
class Entry:
    """One design insight from one paper (``kind="cognition"``).

    ``get()`` also returns experience entries in this shape (see ``_entry_from_experience``).
    """

    id: str
    kind: str
    paper: str
    title: str
    year: int
    insight: str
    symptoms: list[str]
    algorithm: str
    complexity: str
    implementation_notes: str
    tags: list[str]


@dataclass(frozen=True)
class ExperienceEntry:
    """What the analyst learned from one experiment: what changed, what happened, why."""

    run_id: str
    arch_id: str
    parent_id: str
    summary: str
    changes: str
    outcome: str
    fitness: float
    tags: list[str]

    @property
    def id(self) -> str:
        """Content hash; tag order and an integer fitness do not change it."""
        return "exp-" + _content_hash({**asdict(self), "tags": sorted(set(self.tags)), "fitness": float(self.fitness)})


@dataclass(frozen=True)
class Hit:
    """A search result. For experience hits ``paper`` is the architecture id and ``title`` the summary."""

    id: str
    kind: str
    paper: str
    title: str
    score: float
    tags: list[str]
    text: str


def _content_hash(content: dict[str, Any]) -> str:
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:20]


def entry_id(paper: str, title: str, year: int, fields: dict[str, Any]) -> str:
    """The content-hash id of a literature entry."""
    return "cog-" + _content_hash({"paper": paper, "title": title, "year": year, **fields})


def point_id(entry_id_: str) -> str:
    """The Qdrant point id (a UUID) of an entry id."""
    return str(uuid.uuid5(POINT_NAMESPACE, entry_id_))


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= EXCERPT_CHARS:
        return text
    return text[: EXCERPT_CHARS - 1].rsplit(" ", 1)[0] + "…"


# --- schema ----------------------------------------------------------------------------------

ENTRY_TEXT_FIELDS = ("insight", "algorithm", "complexity", "implementation_notes")
ENTRY_FIELDS = (*ENTRY_TEXT_FIELDS, "symptoms", "tags")
PAPER_FIELDS = ("paper", "title", "year", "entries")


def _require_string(source: str, where: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise CorpusError(f"{source}: {where} must be a non-empty string, got {value!r}")
    return value.strip()


def _require_strings(source: str, where: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise CorpusError(f"{source}: {where} must be a non-empty list of strings, got {value!r}")
    return [_require_string(source, f"{where}[{i}]", item) for i, item in enumerate(value)]


def _check_keys(source: str, where: str, record: Any, expected: tuple[str, ...]) -> None:
    if not isinstance(record, dict):
        raise CorpusError(f"{source}: {where} must be a JSON object")
    missing = [key for key in expected if key not in record]
    unknown = sorted(set(record) - set(expected))
    if missing:
        raise CorpusError(f"{source}: {where} is missing field(s) {missing}")
    if unknown:
        raise CorpusError(f"{source}: {where} has unknown field(s) {unknown}; allowed: {list(expected)}")


def parse_paper(record: Any, source: str) -> list[Entry]:
    """Validate one paper record (the corpus file schema) and return its entries."""
    _check_keys(source, "the paper record", record, PAPER_FIELDS)
    paper = _require_string(source, "paper", record["paper"])
    if not PAPER_ID_PATTERN.match(paper):
        raise CorpusError(f"{source}: paper {paper!r} must be lowercase letters, digits and dashes")
    title = _require_string(source, "title", record["title"])
    year = record["year"]
    if not isinstance(year, int) or isinstance(year, bool) or not 1950 <= year <= 2100:
        raise CorpusError(f"{source}: year must be an integer year, got {year!r}")
    if not paper.endswith(f"-{year}"):
        raise CorpusError(f"{source}: paper {paper!r} must end with its year (-{year})")
    raw_entries = record["entries"]
    if not isinstance(raw_entries, list) or not raw_entries:
        raise CorpusError(f"{source}: entries must be a non-empty list")
    entries = []
    for index, raw in enumerate(raw_entries):
        where = f"entries[{index}]"
        _check_keys(source, where, raw, ENTRY_FIELDS)
        fields: dict[str, Any] = {
            name: _require_string(source, f"{where}.{name}", raw[name]) for name in ENTRY_TEXT_FIELDS
        }
        fields["symptoms"] = _require_strings(source, f"{where}.symptoms", raw["symptoms"])
        tags = _require_strings(source, f"{where}.tags", raw["tags"])
        for tag_index, tag in enumerate(tags):
            try:
                parse_tag(tag)
            except ValueError as error:
                raise CorpusError(f"{source}: {where}.tags[{tag_index}]: {error}") from None
        fields["tags"] = sorted(set(tags))
        entries.append(
            Entry(
                id=entry_id(paper, title, year, fields),
                kind="cognition",
                paper=paper,
                title=title,
                year=year,
                **fields,
            )
        )
    return entries


def load_paper_file(path: Path) -> list[Entry]:
    """Read and validate one paper file."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise CorpusError(f"{path}: not valid JSON: {error}") from None
    return parse_paper(record, str(path))


def load_corpus(corpus_dir: Path = DEFAULT_CORPUS) -> list[Entry]:
    """Every entry of every ``*.json`` paper file, validated; a file must be named after its paper."""
    files = sorted(Path(corpus_dir).glob("*.json"))
    if not files:
        raise CorpusError(f"{corpus_dir}: no *.json paper files")
    entries: list[Entry] = []
    seen: dict[str, Path] = {}
    for path in files:
        paper_entries = load_paper_file(path)
        if path.stem != paper_entries[0].paper:
            raise CorpusError(f"{path}: paper is {paper_entries[0].paper!r} but the file must be named after it")
        for entry in paper_entries:
            if entry.id in seen:
                raise CorpusError(f"{path}: an entry duplicates one in {seen[entry.id]} (id {entry.id})")
            seen[entry.id] = path
        entries.extend(paper_entries)
    return entries


def _validate_tags(tags: Iterable[str], source: str) -> list[str]:
    for index, tag in enumerate(tags):
        try:
            parse_tag(tag)
        except ValueError as error:
            raise ValueError(f"{source}: tags[{index}]: {error}") from None
    return sorted(set(tags))


# --- texts that are embedded -----------------------------------------------------------------


def _entry_texts(entry: Entry) -> dict[str, str]:
    texts = {
        "insight": f"{entry.title}. {entry.insight}",
        "symptoms": "; ".join(entry.symptoms),
        "algorithm": f"{entry.algorithm} {entry.implementation_notes}",
    }
    return {**texts, SPARSE_VECTOR: " ".join([*texts.values(), entry.complexity, *entry.tags])}


def _experience_texts(entry: ExperienceEntry) -> dict[str, str]:
    texts = {"insight": entry.summary, "symptoms": entry.outcome, "algorithm": entry.changes}
    return {**texts, SPARSE_VECTOR: " ".join([*texts.values(), *entry.tags])}


def _entry_from_payload(payload: dict[str, Any]) -> Entry:
    return Entry(**{name: payload[name] for name in Entry.__dataclass_fields__})


def _experience_from_payload(payload: dict[str, Any]) -> ExperienceEntry:
    return ExperienceEntry(**{name: payload[name] for name in ExperienceEntry.__dataclass_fields__})


def _entry_from_experience(entry_id_: str, experience: ExperienceEntry) -> Entry:
    """An experience entry in the literature shape, so ``get()`` answers for every id ``search()`` returns."""
    return Entry(
        id=entry_id_,
        kind="experience",
        paper=experience.arch_id,
        title=experience.summary,
        year=0,
        insight=experience.summary,
        symptoms=[experience.outcome],
        algorithm=experience.changes,
        complexity="",
        implementation_notes=(
            f"run {experience.run_id}, parent {experience.parent_id}, fitness {experience.fitness:.4f}"
        ),
        tags=list(experience.tags),
    )


# --- the store -------------------------------------------------------------------------------


class KnowledgeBase:
    """Both collections behind one object. Thread-safe: the gRPC servicer may call it from a pool."""

    def __init__(self, client: QdrantClient) -> None:
        self._client = client
        # qdrant-client's local mode is not safe to share between threads.
        self._lock = threading.RLock()
        self._ensure_collections()

    @classmethod
    def open(cls, data_dir: Path | None = None, url: str | None = None) -> "KnowledgeBase":
        """Local mode in ``data_dir / "qdrant"`` (one process at a time), or a Qdrant server at ``url``."""
        if (data_dir is None) == (url is None):
            raise ValueError("give exactly one of data_dir (local mode) and url (Qdrant server)")
        if data_dir is not None:
            store = Path(data_dir) / "qdrant"
            store.mkdir(parents=True, exist_ok=True)
            return cls(QdrantClient(path=str(store)))
        return cls(QdrantClient(url=url))

    def close(self) -> None:
        with self._lock:
            self._client.close()

    def _ensure_collections(self) -> None:
        dense = {name: qm.VectorParams(size=embedder.DIMENSION, distance=qm.Distance.COSINE) for name in DENSE_VECTORS}
        sparse = {SPARSE_VECTOR: qm.SparseVectorParams(modifier=qm.Modifier.IDF)}
        with self._lock:
            for kind in KINDS:
                if not self._client.collection_exists(kind):
                    self._client.create_collection(kind, vectors_config=dense, sparse_vectors_config=sparse)

    def count(self, kind: str) -> int:
        with self._lock:
            return self._client.count(kind, exact=True).count

    # --- writing ---

    def _existing(self, kind: str, ids: list[str]) -> set[str]:
        with self._lock:
            records = self._client.retrieve(kind, [point_id(i) for i in ids], with_payload=["id"])
        return {record.payload["id"] for record in records if record.payload}

    def _upsert(self, kind: str, payloads: list[dict[str, Any]], texts: list[dict[str, str]]) -> None:
        dense = {name: embedder.embed([t[name] for t in texts]) for name in DENSE_VECTORS}
        points = []
        for i, payload in enumerate(payloads):
            indices, values = terms.document_vector(texts[i][SPARSE_VECTOR])
            vector: dict[str, Any] = {name: dense[name][i] for name in DENSE_VECTORS}
            vector[SPARSE_VECTOR] = qm.SparseVector(indices=indices, values=values)
            points.append(qm.PointStruct(id=point_id(payload["id"]), vector=vector, payload=payload))
        with self._lock:
            self._client.upsert(kind, points=points, wait=True)

    def add_entries(self, entries: list[Entry], source: str, source_sha256: str | None = None) -> int:
        """Store literature entries not yet present; returns how many were new.

        ``source`` says where they came from (``corpus`` or ``ingest``), and ``source_sha256``
        the hash of the document they were extracted from, so that re-ingesting it is a no-op.
        """
        existing = self._existing("cognition", [entry.id for entry in entries])
        fresh = {entry.id: entry for entry in entries if entry.id not in existing}
        if not fresh:
            return 0
        payloads = [
            {**asdict(entry), "source": source, "source_sha256": source_sha256, "text": _excerpt(entry.insight)}
            for entry in fresh.values()
        ]
        self._upsert("cognition", payloads, [_entry_texts(entry) for entry in fresh.values()])
        return len(fresh)

    def ensure_built(self, corpus_dir: Path = DEFAULT_CORPUS) -> int:
        """Bring the literature collection in line with the corpus; returns how many entries were added.

        Corpus entries that were edited or deleted since the last build are removed (their
        content hash no longer exists); entries added by ``kb ingest`` are left alone.
        """
        entries = load_corpus(corpus_dir)
        added = self.add_entries(entries, source="corpus")
        current = {point_id(entry.id) for entry in entries}
        stale = [record.id for record in self._scroll("cognition", _match("source", "corpus"))]
        stale = [pid for pid in stale if str(pid) not in current]
        if stale:
            with self._lock:
                self._client.delete("cognition", points_selector=qm.PointIdsList(points=stale), wait=True)
        return added

    def add_experience(self, entry: ExperienceEntry) -> str:
        """Store one analyst entry; storing the same entry again changes nothing. Returns its id."""
        tags = _validate_tags(entry.tags, f"experience entry for {entry.arch_id}")
        if not entry.summary.strip():
            raise ValueError(f"experience entry for {entry.arch_id}: summary must not be empty")
        entry = ExperienceEntry(**{**asdict(entry), "tags": tags, "fitness": float(entry.fitness)})
        entry_id_ = entry.id
        if not self._existing("experience", [entry_id_]):
            payload = {**asdict(entry), "id": entry_id_, "kind": "experience", "text": _excerpt(entry.summary)}
            self._upsert("experience", [payload], [_experience_texts(entry)])
        return entry_id_

    # --- reading ---

    def _scroll(self, kind: str, scroll_filter: qm.Filter | None) -> list[qm.Record]:
        records: list[qm.Record] = []
        offset = None
        with self._lock:
            while True:
                page, offset = self._client.scroll(
                    kind, scroll_filter=scroll_filter, limit=256, offset=offset, with_payload=True
                )
                records.extend(page)
                if offset is None:
                    return records

    def entries_from_source(self, source_sha256: str) -> list[Entry]:
        """The literature entries extracted from one document, oldest first by id."""
        records = self._scroll("cognition", _match("source_sha256", source_sha256))
        return sorted((_entry_from_payload(r.payload or {}) for r in records), key=lambda e: e.id)

    def get(self, entry_id_: str) -> Entry | None:
        with self._lock:
            for kind in KINDS:
                records = self._client.retrieve(kind, [point_id(entry_id_)], with_payload=True)
                if records and records[0].payload:
                    payload = records[0].payload
                    if kind == "cognition":
                        return _entry_from_payload(payload)
                    return _entry_from_experience(entry_id_, _experience_from_payload(payload))
        return None

    def get_experience(self, entry_id_: str) -> ExperienceEntry | None:
        with self._lock:
            records = self._client.retrieve("experience", [point_id(entry_id_)], with_payload=True)
        if not records or not records[0].payload:
            return None
        return _experience_from_payload(records[0].payload)

    def search(
        self,
        query: str,
        k: int = 5,
        kinds: tuple[str, ...] = KINDS,
        tags: list[str] | None = None,
        paper: str | None = None,
        run_id: str | None = None,
        year: int | None = None,
    ) -> list[Hit]:
        """The ``k`` best entries of the given kinds, best first.

        ``tags`` (all required) apply to both kinds.  ``paper`` and ``year`` describe literature,
        so giving either leaves experience out.  ``run_id`` scopes experience to one run and
        leaves literature as it is, so a researcher gets its run's experience and the whole
        literature in one call.
        """
        unknown = [kind for kind in kinds if kind not in KINDS]
        if unknown:
            raise ValueError(f"unknown kind(s) {unknown}; known: {list(KINDS)}")
        if k <= 0:
            return []
        tag_conditions = [_condition("tags", tag) for tag in _validate_tags(tags or [], "search")]
        [dense_query] = embedder.embed([query])
        indices, values = terms.query_vector(query)
        queries: list[tuple[str, Any]] = [(name, dense_query) for name in DENSE_VECTORS]
        if indices:
            queries.append((SPARSE_VECTOR, qm.SparseVector(indices=indices, values=values)))
        hits: list[Hit] = []
        for kind in kinds:
            conditions = list(tag_conditions)
            if kind == "cognition":
                if paper is not None:
                    conditions.append(_condition("paper", paper))
                if year is not None:
                    conditions.append(_condition("year", year))
            else:
                if paper is not None or year is not None:
                    continue
                if run_id is not None:
                    conditions.append(_condition("run_id", run_id))
            hits.extend(self._search_kind(kind, queries, conditions))
        hits.sort(key=lambda hit: (-hit.score, hit.id))
        return hits[:k]

    def _search_kind(self, kind: str, queries: list[tuple[str, Any]], conditions: list[Any]) -> list[Hit]:
        """Gather candidates from every vector, then score every candidate on every vector."""
        payloads: dict[str, dict[str, Any]] = {}
        scores: dict[str, dict[str, float]] = {}
        with self._lock:
            for name, query in queries:
                for point in self._query(kind, name, query, conditions, CANDIDATES_PER_VECTOR):
                    payloads[str(point.id)] = point.payload or {}
            if not payloads:
                return []
            only_candidates = [*conditions, qm.HasIdCondition(has_id=list(payloads))]
            for name, query in queries:
                for point in self._query(kind, name, query, only_candidates, len(payloads)):
                    scores.setdefault(str(point.id), {})[name] = point.score
        hits = []
        for pid, payload in payloads.items():
            by_vector = scores.get(pid, {})
            dense = max(by_vector.get(name, -1.0) for name in DENSE_VECTORS)
            hits.append(_hit(dense + LEXICAL_WEIGHT * by_vector.get(SPARSE_VECTOR, 0.0), payload))
        return hits

    def _query(self, kind: str, using: str, query: Any, conditions: list[Any], limit: int) -> list[qm.ScoredPoint]:
        response = self._client.query_points(
            kind,
            query=query,
            using=using,
            query_filter=qm.Filter(must=conditions) if conditions else None,
            limit=limit,
            with_payload=True,
        )
        return response.points


def _hit(score: float, payload: dict[str, Any]) -> Hit:
    if payload["kind"] == "cognition":
        paper, title = payload["paper"], payload["title"]
    else:
        paper, title = payload["arch_id"], _excerpt(payload["summary"])
    return Hit(
        id=payload["id"],
        kind=payload["kind"],
        paper=paper,
        title=title,
        score=round(float(score), 6),
        tags=list(payload["tags"]),
        text=payload["text"],
    )


def _condition(key: str, value: str | int) -> qm.FieldCondition:
    return qm.FieldCondition(key=key, match=qm.MatchValue(value=value))


def _match(key: str, value: str | int) -> qm.Filter:
    return qm.Filter(must=[_condition(key, value)])
