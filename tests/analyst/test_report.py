"""`asi-arch report`: one self-contained HTML page and the same figures as JSON, from an exported
file, for a finished run, a run in progress, and logs with nothing to show."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from services.analyst.analytics import run_analytics
from services.analyst.report import _lineage, named_nodes
from services.analyst.summary import markdown
from services.cli import main
from services.runtime.logfile import fold, read_file
from tests.analyst.history import RUN, History, full_history

SECTIONS = ("Baselines", "Leaderboard", "Discovery curve", "Exploration", "Lineage", "Component Pareto", "Origins",
            "Proxy fidelity", "Promotions", "Leak rule", "SOTA gallery")


def report(log: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> tuple[dict, str]:
    assert main(["report", "--file", str(log), "-o", str(out), "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    return figures, (out / "index.html").read_text()


def test_the_page_has_every_section_filled_and_the_json_has_the_same_figures(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = full_history().write(tmp_path / "run.jsonl")
    figures, page = report(log, tmp_path / "out", capsys)
    assert figures == json.loads(json.dumps(run_analytics(fold(read_file(log)), RUN)))
    again, _ = report(log, tmp_path / "again", capsys)
    assert again == figures  # the same file, the same figures
    for title in SECTIONS:
        assert f"<h2>{title}" in page
    assert len(re.findall(r'src="data:image/png;base64,', page)) >= 6
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing from the network
    assert 'class="note"' not in page  # every section has something to show
    assert page.count("class='sota'") == 2 and "why c3" in page  # the gallery: c1 and c3, with motivation
    # Each SOTA architecture's code as a file beside the page, as the log holds it, for `asi-arch train`.
    for item in figures["gallery"]:
        assert (tmp_path / "out" / "sota" / f"{item['arch_id']}.py").read_text() == item["code"]
        assert f"sota/{item['arch_id']}.py" in page


def test_the_markdown_figures_are_a_function_of_the_report(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    log = full_history().write(tmp_path / "run.jsonl")
    assert main(["report", "--file", str(log), "--markdown", str(tmp_path / "figures.md"), "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    text = (tmp_path / "figures.md").read_text()
    assert text == markdown(figures)
    # The two SOTA of the hand-built history (c1, c3) and the denied c2, with their re-runs' means.
    assert "| c1 (`c1`) | 0.6000 | **SOTA** |" in text and "| c2 (`c2`) | 0.5500 | denied |" in text
    assert "| SOTA rate per trained experiment | 2 of 5 (40.0%) |" in text
    assert "**c3** (`c3`, origin original" in text and "| b2 | 2.9000 / 0.280 |" in text


def test_a_run_in_progress_is_reported_as_such(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    figures, page = report(full_history(finished=False).write(tmp_path / "run.jsonl"), tmp_path / "out", capsys)
    assert not figures["run"]["finished"] and "in progress" in page and figures["sota_rate"]["sota"] == 2


def _only_started() -> History:
    h = History()
    h.start()
    return h


def _failed_baselines() -> History:
    h = History()
    h.start()
    for base in ("b1", "b2"):
        h.propose(base, baseline=True)
        h.fail(base)
    return h


def _one_experiment() -> History:
    h = History()
    h.start(experiments=1)
    h.propose("b1", baseline=True)
    h.train("b1", 3.0, 0.3)
    h.judge("b1", 0.5)
    h.propose("c1", changes={"decay": "scalar"}, parent="b1", origin="original")
    h.train("c1", 3.1, 0.2)
    h.judge("c1", 0.45)
    h.analyze("c1", "regressed")
    return h


@pytest.mark.parametrize(("history", "expected"), [
    (_only_started, ["No baseline has been proposed yet", "Nothing has been judged yet", "No SOTA architecture"]),
    (_failed_baselines, ["Baseline(s) failed: b1, b2", "No SOTA architecture", "No trained experiment yet"]),
    (_one_experiment, ["A single experiment", "No promotion has been decided yet", "No SOTA architecture"]),
])
def test_a_log_with_nothing_to_show_says_so_in_each_section(history, expected: list[str], tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    figures, page = report(history().write(tmp_path / "run.jsonl"), tmp_path / "out", capsys)
    for text in expected:
        assert text in page, text
    for title in SECTIONS:
        assert f"<h2>{title}" in page
    assert figures["gallery"] == []


def test_a_crowded_lineage_names_its_sota_and_fittest_and_says_how_many_it_left_unnamed() -> None:
    baseline = {"arch_id": "b", "name": "b", "parents": [], "status": "judged", "fitness": 0.5,
                "is_baseline": True, "sota": False}
    children = [{"arch_id": f"c{i}", "name": f"c{i}", "parents": ["b"], "status": "judged", "fitness": i / 100,
                 "is_baseline": False, "sota": i == 0} for i in range(60)]
    by_id = {n["arch_id"]: n for n in [baseline, *children]}
    named = named_nodes({0: ["b"], 1: [c["arch_id"] for c in children]}, by_id)
    # The SOTA has the lowest fitness on its level and is still named; then the 39 fittest.
    assert named == {"b", "c0", *(f"c{i}" for i in range(21, 60))}
    edges = [{"parent": "b", "child": c["arch_id"]} for c in children]
    page = _lineage({"lineage": {"nodes": [baseline, *children], "edges": edges}})
    assert "data:image/png;base64," in page and "20 of 61 nodes are unnamed" in page
    few = _lineage({"lineage": {"nodes": [baseline, *children[:5]], "edges": edges[:5]}})
    assert 'class="note"' not in few  # every node of a small tree is named
