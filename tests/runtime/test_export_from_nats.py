"""`events export --nats URL` and `report --nats URL` read the log from a running NATS (a
cluster's, through `kubectl port-forward`): the exported file verifies and is byte for byte the
data-dir export of the same log."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.pb import events_pb2
from services.runtime.eventstore import EventStore
from services.runtime.natsserver import EmbeddedNats


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.cli", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def data_dir_server(tmp_path: Path) -> Iterator[tuple[Path, EmbeddedNats]]:
    """A data dir whose log is served by a running nats-server, as `asi-arch run` leaves it."""
    data_dir = tmp_path / "asi"
    server = EmbeddedNats(data_dir / "nats", url_file=data_dir / "nats.url")
    server.start()
    yield data_dir, server
    server.stop()


async def append_a_run(url: str) -> None:
    store = await EventStore.open(url, "test")
    try:
        await store.append(events_pb2.RunStarted(profile="tiny", experiments=2), run_id="run-1",
                           aggregate_id="run-1")
        for i, fitness in enumerate((0.5, 0.62)):
            arch = f"arch-{i}"
            await store.append(events_pb2.ArchitectureProposed(arch_id=arch, name=f"n{i}", is_baseline=i == 0,
                                                               parent_ids=[] if i == 0 else ["arch-0"],
                                                               code="x", origin="seed" if i == 0 else "original"),
                               run_id="run-1", aggregate_id=arch)
            await store.append(events_pb2.TrainingRequested(arch_id=arch, job_id=f"job-{i}"), run_id="run-1",
                               aggregate_id=arch)
            await store.append(events_pb2.TrainingFinished(arch_id=arch, val_loss=2.5 - fitness,
                                                           benchmarks={"mqar": fitness}),
                               run_id="run-1", aggregate_id=arch)
            await store.append(events_pb2.ArchitectureJudged(arch_id=arch, fitness=fitness), run_id="run-1",
                               aggregate_id=arch)
    finally:
        await store.close()


async def test_the_log_exported_from_nats_verifies_and_equals_the_data_dir_export(
        data_dir_server: tuple[Path, EmbeddedNats], tmp_path: Path) -> None:
    data_dir, server = data_dir_server
    await append_a_run(server.url)

    from_nats = tmp_path / "from-nats.jsonl"
    exported = cli("events", "export", "--nats", server.url, "-o", str(from_nats))
    assert exported.returncode == 0, exported.stderr
    assert "exported 9 events" in exported.stderr

    verified = cli("events", "verify", str(from_nats), "--json")
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["events"] == 9

    from_data_dir = tmp_path / "from-data-dir.jsonl"
    assert cli("events", "export", "--data-dir", str(data_dir), "-o", str(from_data_dir)).returncode == 0
    assert from_nats.read_bytes() == from_data_dir.read_bytes()


async def test_the_report_from_nats_is_the_report_of_the_exported_file(
        nats_server: EmbeddedNats, tmp_path: Path) -> None:
    await append_a_run(nats_server.url)
    exported = tmp_path / "log.jsonl"
    assert cli("events", "export", "--nats", nats_server.url, "-o", str(exported)).returncode == 0

    live = cli("report", "--nats", nats_server.url, "--json")
    assert live.returncode == 0, live.stderr
    from_file = cli("report", "--file", str(exported), "--json")
    assert json.loads(live.stdout) == json.loads(from_file.stdout)
    report = json.loads(live.stdout)
    assert report["run"]["run_id"] == "run-1"
    assert [row["arch_id"] for row in report["leaderboard"]] == ["arch-1", "arch-0"]


def test_report_takes_one_source_of_the_log(tmp_path: Path) -> None:
    done = cli("report", "--nats", "nats://127.0.0.1:1", "--file", str(tmp_path / "log.jsonl"))
    assert done.returncode == 2
    assert "not allowed with argument" in done.stderr
