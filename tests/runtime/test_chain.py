"""The exported audit file: `events verify` catches any edit, insertion, removal, reorder or
truncation, and `replay` rebuilds the same projections (same digest) every time."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from services.pb import events_pb2
from services.runtime import envelope
from services.runtime.eventstore import EventStore


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.cli", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
async def exported(store: EventStore, tmp_path: Path) -> Path:
    """A small but real run history, appended through the store and exported."""
    run = await store.append(events_pb2.RunStarted(profile="tiny", experiments=2), run_id="run-1",
                             aggregate_id="run-1")
    origins, decays = ("seed", "cognition", "original"), ("none", "scalar", "vector")
    for i, fitness in enumerate((0.5, 0.61, 0.43)):
        arch = f"arch-{i}"
        parents = [] if i == 0 else ["arch-0"]
        await store.append(events_pb2.ArchitectureProposed(arch_id=arch, name=f"n{i}", parent_ids=parents,
                                                           is_baseline=i == 0, code="x", origin=origins[i],
                                                           components={"decay": decays[i]}),
                           run_id="run-1", aggregate_id=arch, correlation_id=run.event_id)
        await store.append(events_pb2.TrainingRequested(arch_id=arch, job_id=f"j{i}"), run_id="run-1",
                           aggregate_id=arch)
        await store.append(events_pb2.TrainingFinished(arch_id=arch, val_loss=2.0 + fitness,
                                                       benchmarks={"mqar": fitness, "copy": 1 - fitness}),
                           run_id="run-1", aggregate_id=arch)
        await store.append(events_pb2.ArchitectureJudged(arch_id=arch, fitness=fitness, terms={"loss": fitness}),
                           run_id="run-1", aggregate_id=arch)
    path = tmp_path / "log.jsonl"
    path.write_text("".join(envelope.export_lines(r.env for r in await store.read_all() if r.env)))
    return path


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def verify_lines(lines: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text("".join(lines))
    return cli("events", "verify", str(tampered))


def test_an_untouched_log_verifies(exported: Path) -> None:
    result = cli("events", "verify", str(exported))
    assert result.returncode == 0, result.stderr
    assert "chain holds: 13 events" in result.stderr


def test_changing_any_byte_breaks_the_chain_at_that_event(exported: Path, tmp_path: Path) -> None:
    lines = lines_of(exported)
    target = random.randrange(len(lines) - 1)  # an event line; the trailer has its own tests
    line = lines[target]
    position = random.randrange(len(line) - 1)  # never the newline
    original = line[position]
    replacement = next(c for c in "0123456789abcdefXYZ" if c != original)
    lines[target] = line[:position] + replacement + line[position + 1:]
    result = verify_lines(lines, tmp_path)
    assert result.returncode == 1
    assert f"chain broken at sequence {target + 1}" in result.stderr


def test_an_edited_value_is_caught_even_when_the_json_stays_valid(exported: Path, tmp_path: Path) -> None:
    lines = lines_of(exported)
    record = json.loads(lines[5])
    record["run_id"] = "run-2"
    lines[5] = json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n"
    result = verify_lines(lines, tmp_path)
    assert result.returncode == 1
    assert "chain broken at sequence 6" in result.stderr


def test_removing_an_event_is_caught(exported: Path, tmp_path: Path) -> None:
    lines = lines_of(exported)
    del lines[4]
    result = verify_lines(lines, tmp_path)
    assert result.returncode == 1
    assert "chain broken at sequence 5" in result.stderr


def test_a_cut_at_a_line_boundary_is_caught_after_the_last_event_kept(exported: Path, tmp_path: Path) -> None:
    lines = lines_of(exported)
    for keep in (0, 5, len(lines) - 1):  # nothing, a few events, every event but the trailer
        result = verify_lines(lines[:keep], tmp_path)
        assert result.returncode == 1
        assert f"chain broken at sequence {keep + 1}" in result.stderr and "cut" in result.stderr


def test_a_cut_that_keeps_the_trailer_is_caught(exported: Path, tmp_path: Path) -> None:
    lines = lines_of(exported)
    result = verify_lines([*lines[:10], lines[-1]], tmp_path)
    assert result.returncode == 1
    assert "chain broken at sequence 11" in result.stderr and "seals 13 events" in result.stderr


def test_a_cut_inside_a_line_is_caught(exported: Path, tmp_path: Path) -> None:
    text = exported.read_text()
    result = verify_lines([text[: len(text) // 2]], tmp_path)
    assert result.returncode == 1
    assert "chain broken at sequence" in result.stderr


def test_an_inserted_event_is_caught(exported: Path, tmp_path: Path) -> None:
    lines = lines_of(exported)
    lines.insert(3, lines[2])  # a valid event, repeated where it does not belong
    result = verify_lines(lines, tmp_path)
    assert result.returncode == 1
    assert "chain broken at sequence 4" in result.stderr


def test_the_trailer_seals_the_head_that_verify_prints(exported: Path) -> None:
    lines = lines_of(exported)
    report = envelope.verify_chain(lines)
    assert report.ok and report.events == 13
    assert report.head == json.loads(lines[-2])["hash"]
    assert envelope.parse_trailer(lines[-1]) == (13, report.head)


def test_swapping_two_events_is_caught(exported: Path, tmp_path: Path) -> None:
    lines = lines_of(exported)
    lines[7], lines[8] = lines[8], lines[7]
    result = verify_lines(lines, tmp_path)
    assert result.returncode == 1
    assert "chain broken at sequence 8" in result.stderr


def test_replay_is_deterministic_and_reads_the_file_alone(exported: Path) -> None:
    first = cli("replay", str(exported), "--json")
    second = cli("replay", str(exported), "--json")
    assert first.returncode == 0, first.stderr
    one, two = json.loads(first.stdout), json.loads(second.stdout)
    assert one["digest"] == two["digest"]
    assert one["experiments"] == 2
    assert [row["arch_id"] for row in one["leaderboard"]] == ["arch-1", "arch-0", "arch-2"]
    assert sorted((e["parent"], e["child"]) for e in one["lineage"]) == [("arch-0", "arch-1"), ("arch-0", "arch-2")]


def test_report_counts_discoveries_their_origins_and_component_win_rates(exported: Path) -> None:
    result = cli("report", "--file", str(exported), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["experiments"], report["discoveries"], report["baseline_fitness"]) == (2, 1, 0.5)
    assert report["discovery_curve"] == [{"experiments": 1, "discoveries": 1}, {"experiments": 2, "discoveries": 1}]
    assert report["origins_of_discoveries"] == {"cognition": {"count": 1, "share": 1.0}}
    assert report["components"]["decay=scalar"] == {"tried": 1, "won": 1, "win_rate": 1.0}
    assert report["components"]["decay=vector"] == {"tried": 1, "won": 0, "win_rate": 0.0}
