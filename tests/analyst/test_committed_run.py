"""The discovery run committed under `runs/`: its chain holds, it replays to the digest the README
states, and the README's "Discoveries" figures are exactly what `asi-arch report --markdown`
derives from it (nothing in that section is typed in)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from services.cli import main

ROOT = Path(__file__).resolve().parents[2]
FIGURES = re.compile(r"<!-- figures: asi-arch report --file (?P<log>\S+) --markdown -->\n"
                     r"(?P<text>.*?)<!-- /figures -->", re.S)
DIGEST = re.compile(r"`asi-arch replay (?P<log>\S+)` gives digest `(?P<digest>[0-9a-f]{64})`")


def readme() -> str:
    return (ROOT / "README.md").read_text()


def test_the_readme_names_a_committed_log_and_its_digest() -> None:
    figures, digest = FIGURES.search(readme()), DIGEST.search(readme())
    assert figures and digest, "the README's Discoveries section names the committed log, its figures and digest"
    assert figures["log"] == digest["log"] and (ROOT / figures["log"]).is_file()


def test_the_committed_log_verifies_and_replays_to_the_stated_digest(capsys: pytest.CaptureFixture[str]) -> None:
    stated = DIGEST.search(readme())
    assert stated
    log = ROOT / stated["log"]
    assert main(["events", "verify", str(log), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"]
    assert main(["replay", str(log), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["digest"] == stated["digest"]


def test_the_readme_figures_are_the_reports_figures(tmp_path: Path) -> None:
    section = FIGURES.search(readme())
    assert section
    out = tmp_path / "figures.md"
    assert main(["report", "--file", str(ROOT / section["log"]), "--markdown", str(out)]) == 0
    assert section["text"] == out.read_text()
