"""The whole loop, as a user runs it: `asi-arch run` on a fresh data dir, interrupted and
resumed, then every audit tool on its log. Real nats-server, Qdrant, embeddings, training."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.runtime import envelope
from services.runtime.logfile import read_file

pytestmark = pytest.mark.slow
EXPERIMENTS = 3


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def processes_touching(data_dir: Path) -> list[str]:
    """Live processes whose command line or environment names the data dir."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            blob = (proc / "cmdline").read_bytes() + (proc / "environ").read_bytes()
        except OSError:
            continue
        if str(data_dir).encode() in blob:
            found.append(proc.name)
    return found


def exported(data_dir: Path, path: Path) -> list[envelope.events_pb2.Envelope]:
    result = cli("events", "export", "--data-dir", str(data_dir), "-o", str(path))
    assert result.returncode == 0, result.stderr
    return read_file(path)


def test_a_run_resumes_and_its_log_verifies_replays_and_audits(tmp_path: Path) -> None:
    data = tmp_path / "asi"
    command = [sys.executable, "-m", "services.cli", "run", "--experiments", str(EXPERIMENTS), "--profile", "tiny",
               "--data-dir", str(data)]

    # 1. Start a run and interrupt it once the baselines and one experiment are analysed.
    first = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    experiment_analysed, seen = False, []
    assert first.stderr is not None
    for line in first.stderr:
        seen.append(line)
        if " analyzed: " in line and " analyzed: baseline" not in line:
            experiment_analysed = True
            break
    assert experiment_analysed, "".join(seen[-30:])
    first.send_signal(signal.SIGINT)
    assert first.wait(timeout=90) == 130
    assert processes_touching(data) == []
    before = exported(data, tmp_path / "before.jsonl")
    trained_before = {envelope.unpack(e).arch_id for e in before if e.type == "TrainingFinished"}
    failures = [f"{f.arch_id} {f.kind}: {f.message}"
                for f in (envelope.unpack(e) for e in before if e.type == "TrainingFailed")]
    assert len(trained_before) >= 2, ("".join(seen[-30:]), failures)

    # 2. The same command resumes the run from the log and finishes it.
    resumed = subprocess.run([*command, "--json"], capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming run" in resumed.stderr
    live = json.loads(resumed.stdout)
    assert live["experiments"] == EXPERIMENTS
    assert processes_touching(data) == []

    # 3. No finished experiment was trained again.
    log_path = tmp_path / "run.jsonl"
    events = exported(data, log_path)
    # By job: the judge's seed replicates of a promotion candidate are jobs of their own on its arch id.
    finished = [envelope.unpack(e) for e in events if e.type == "TrainingFinished"]
    jobs = [f.job_id for f in finished]
    assert len(jobs) == len(set(jobs)) and trained_before <= {f.arch_id for f in finished}
    assert sum(e.type == "RunFinished" for e in events) == 1

    # 4. The chain holds; replay from the file alone equals the live projection, every time.
    assert cli("events", "verify", str(log_path)).returncode == 0
    replays = [json.loads(cli("replay", str(log_path), "--json").stdout) for _ in range(2)]
    assert replays[0]["digest"] == replays[1]["digest"] == live["digest"]
    assert replays[0]["experiments"] == EXPERIMENTS
    assert len(replays[0]["lineage"]) >= EXPERIMENTS
    assert replays[0]["leaderboard"], "the judge scored nothing"

    # 5. Every architecture has a readable decision trail.
    proposals = [envelope.unpack(e) for e in events if e.type == "ArchitectureProposed"]
    arch_ids = [p.arch_id for p in proposals]
    for arch_id in arch_ids:
        audit = cli("audit", arch_id, "--data-dir", str(data))
        assert audit.returncode == 0, audit.stderr
        assert arch_id in audit.stdout and "trail:" in audit.stdout and "ArchitectureProposed" in audit.stdout
    child = next(p.arch_id for p in proposals if not p.is_baseline)
    trail = cli("audit", child, "--file", str(log_path)).stdout
    assert "parent:" in trail and "chosen as:" in trail and ("judged:" in trail or "failure:" in trail)

    # 6. Tampering with the exported file breaks verification at that event.
    lines = log_path.read_text().splitlines(keepends=True)
    lines[3] = lines[3].replace('"tiny"', '"huge"') if '"tiny"' in lines[3] else lines[3].replace("a", "b", 1)
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text("".join(lines))
    broken = cli("events", "verify", str(tampered))
    assert broken.returncode == 1 and "chain broken at sequence 4" in broken.stderr

    # 7. Running again on a finished data dir redoes nothing.
    again = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "already finished" in again.stderr
    assert len(exported(data, tmp_path / "after.jsonl")) == len(events)
    assert processes_touching(data) == []


def test_a_killed_launcher_takes_its_servers_and_services_with_it(tmp_path: Path) -> None:
    data = tmp_path / "asi"
    launcher = subprocess.Popen([sys.executable, "-m", "services.cli", "run", "--experiments", "1", "--profile",
                                 "tiny", "--data-dir", str(data)], stderr=subprocess.PIPE, text=True)
    assert launcher.stderr is not None
    for line in launcher.stderr:
        if "training on" in line:  # the engineer is busy with a job: the hardest moment to stop
            break
    launcher.kill()
    launcher.wait()
    for _ in range(40):
        if not processes_touching(data):
            break
        time.sleep(0.5)
    assert processes_touching(data) == []
    # The data dir is free again: the next run resumes instead of finding it taken.
    resumed = subprocess.run([sys.executable, "-m", "services.cli", "run", "--experiments", "1", "--profile", "tiny",
                              "--data-dir", str(data)], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming run" in resumed.stderr
