"""`asi-arch kb ingest` records what it added as a KnowledgeIngested event in the data
dir's log, once: re-ingesting the same content adds nothing anywhere."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from services.runtime import envelope
from services.runtime.logfile import read_file


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.cli", *args], capture_output=True, text=True, timeout=300)


def test_ingestion_is_an_event_and_is_idempotent(tmp_path: Path) -> None:
    data = tmp_path / "asi"
    paper = {"paper": "example-gated-recall-2026", "title": "A gated recall test paper", "year": 2026,
             "entries": [{"insight": "A sigmoid gate on the read-out suppresses stale associations.",
                          "symptoms": ["low MQAR accuracy at long gaps"], "algorithm": "o_t = sigmoid(W x_t) * S_t q_t",
                          "complexity": "O(T d^2)", "implementation_notes": "initialise the gate bias at 1",
                          "tags": ["gate=output"]}]}
    source = tmp_path / "example-gated-recall-2026.json"
    source.write_text(json.dumps(paper))

    first = cli("kb", "ingest", str(source), "--json", "--data-dir", str(data))
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["added"] == 1
    again = cli("kb", "ingest", str(source), "--json", "--data-dir", str(data))
    assert again.returncode == 0 and json.loads(again.stdout)["added"] == 0

    exported = tmp_path / "log.jsonl"
    assert cli("events", "export", "--data-dir", str(data), "-o", str(exported)).returncode == 0
    events = read_file(exported)
    ingested = [envelope.unpack(e) for e in events if e.type == "KnowledgeIngested"]
    assert len(ingested) == 1
    assert list(ingested[0].entry_ids) == [entry["id"] for entry in report["entries"]]
    assert ingested[0].extractor == "structured" and ingested[0].source == str(source)
