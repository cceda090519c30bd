"""Ingestion of paper files and of paper text.

The LLM path runs the real HTTP client against a recorded-answer server: a local
OpenAI-compatible ``/v1/chat/completions`` endpoint started by the test that replays a
recorded answer.  No LLM can be reached from these machines, so the recorded answer in
``recorded/`` was written by hand in the exact shape such a server returns.
"""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.cognition.ingest import IngestError, ingest_path
from services.cognition.knowledge import KnowledgeBase
from services.runtime.llm import LLMClient
from tests.recorded_llm import RecordedAnswerServer

RECORDED = Path(__file__).parent / "recorded"
PAPER_TEXT = RECORDED / "random-feature-attention.txt"
ANSWER = RECORDED / "random-feature-attention.chat-completion.json"


@pytest.fixture
def empty_kb(tmp_path: Path) -> Iterator[KnowledgeBase]:
    kb = KnowledgeBase.open(data_dir=tmp_path / "store")
    yield kb
    kb.close()


@pytest.fixture
def recorded_answer() -> dict:
    return json.loads(ANSWER.read_text())


def _paper_file(folder: Path) -> Path:
    record = {
        "paper": "example-ingest-2024",
        "title": "An ingested example",
        "year": 2024,
        "entries": [
            {
                "insight": "A gate on the mixer output helps a linear RNN ignore irrelevant memory.",
                "symptoms": ["validation loss worse than baseline"],
                "algorithm": "o_t = RMSNorm(S_t q_t) * sigmoid(W x_t)",
                "complexity": "One extra projection.",
                "implementation_notes": "Normalise before gating.",
                "tags": ["gate=output", "out_norm=rms"],
            }
        ],
    }
    path = folder / "example-ingest-2024.json"
    path.write_text(json.dumps(record))
    return path


def test_a_structured_paper_file_is_ingested_once(empty_kb: KnowledgeBase, tmp_path: Path) -> None:
    papers = tmp_path / "papers"
    papers.mkdir()
    path = _paper_file(papers)
    first = ingest_path(empty_kb, path, llm=None)
    assert first.added == 1 and [e.paper for e in first.entries] == ["example-ingest-2024"]
    again = ingest_path(empty_kb, papers, llm=None)
    assert again.added == 0 and [e.id for e in again.entries] == [e.id for e in first.entries]
    assert empty_kb.count("cognition") == 1
    [hit] = empty_kb.search("gate the output to ignore irrelevant memory", k=1)
    assert hit.paper == "example-ingest-2024"


def test_paper_text_without_an_llm_is_refused_with_instructions(empty_kb: KnowledgeBase) -> None:
    with pytest.raises(IngestError) as error:
        ingest_path(empty_kb, PAPER_TEXT, llm=None)
    message = str(error.value)
    assert "needs an LLM" in message and "ASI_LLM_URL" in message and "README.md" in message
    assert empty_kb.count("cognition") == 0


def test_a_pdf_is_refused_until_its_text_is_extracted(empty_kb: KnowledgeBase, tmp_path: Path) -> None:
    pdf = tmp_path / "paper.pdf"
    pdf.write_bytes(b"%PDF-1.7\n%binary")
    with pytest.raises(IngestError, match="extract its text"):
        ingest_path(empty_kb, pdf, llm=None)


def test_paper_text_is_extracted_by_the_llm_once(empty_kb: KnowledgeBase, recorded_answer: dict) -> None:
    with RecordedAnswerServer({"paper_record": recorded_answer}) as server:
        llm = LLMClient(server.base_url, "recorded-model")
        report = ingest_path(empty_kb, PAPER_TEXT, llm)
        again = ingest_path(empty_kb, PAPER_TEXT, llm)

    assert report.added == 1
    [entry] = report.entries
    assert (entry.paper, entry.year, entry.tags) == (
        "random-feature-attention-2021",
        2021,
        ["decay=scalar", "update=linear"],
    )
    [request] = server.requests
    assert request["model"] == "recorded-model"
    assert request["response_format"]["type"] == "json_schema"
    assert (
        "Random Fourier" in request["messages"][1]["content"] or "random Fourier" in request["messages"][1]["content"]
    )
    [exchange] = report.exchanges
    assert exchange.response == recorded_answer["choices"][0]["message"]["content"]

    # The second ingest found the document's entries and did not ask the LLM again.
    assert again.added == 0 and again.exchanges == [] and [e.id for e in again.entries] == [entry.id]
    [hit] = empty_kb.search("random fourier features with a recency gate", k=1)
    assert hit.id == entry.id


def test_an_llm_answer_with_an_unknown_tag_is_refused(empty_kb: KnowledgeBase, recorded_answer: dict) -> None:
    content = json.loads(recorded_answer["choices"][0]["message"]["content"])
    content["entries"][0]["tags"] = ["update=linear", "decay=random"]
    recorded_answer["choices"][0]["message"]["content"] = "```json\n" + json.dumps(content) + "\n```"
    with RecordedAnswerServer({"paper_record": recorded_answer}) as server:
        with pytest.raises(IngestError) as error:
            ingest_path(empty_kb, PAPER_TEXT, LLMClient(server.base_url, "recorded-model"))
    assert "LLM extraction" in str(error.value) and "entries[0].tags[1]" in str(error.value)
    assert empty_kb.count("cognition") == 0


def test_an_unreachable_llm_is_a_clear_error(empty_kb: KnowledgeBase) -> None:
    with pytest.raises(IngestError, match="LLM request to http://127.0.0.1:9/v1/chat/completions failed"):
        ingest_path(empty_kb, PAPER_TEXT, LLMClient("http://127.0.0.1:9/v1", "m", timeout_s=2))
