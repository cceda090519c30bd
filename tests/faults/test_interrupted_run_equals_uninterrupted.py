"""Fault case 3: a whole run interrupted (SIGINT, and separately SIGKILL) and restarted on the same
data dir resumes, redoes no finished experiment, and ends with the projections of an uninterrupted
run of the same seed, timing fields aside. Real processes, real `nats-server`, training at `tiny`."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from services.runtime import envelope
from services.runtime.logfile import read_file
from services.runtime.projection import Projection

pytestmark = pytest.mark.slow
EXPERIMENTS = 2  # children; the interruption comes while the first trains
SEED = 7


def command(data: Path) -> list[str]:
    return [sys.executable, "-m", "services.cli", "run", "--experiments", str(EXPERIMENTS), "--profile", "tiny",
            "--seed", str(SEED), "--data-dir", str(data)]


def exported(data: Path, path: Path) -> list[envelope.events_pb2.Envelope]:
    result = subprocess.run([sys.executable, "-m", "services.cli", "events", "export", "--data-dir", str(data),
                             "-o", str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    verified = subprocess.run([sys.executable, "-m", "services.cli", "events", "verify", str(path)],
                              capture_output=True, text=True, timeout=120)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    return read_file(path)


# View fields that hold timings, or text and ids made from them (the judge's rationale quotes the
# measured tokens/s, the analysis compares it with the parent's; job ids name deliveries); and
# hashes of contents that name the run's random ids (a child's code names its parent's id, and its
# checkpoint holds its code), whose contents are compared instead.
TIMED = {"run_id", "trail", "last_event_id", "progress", "job_id", "rationale", "judgement", "analysis", "effects",
         "code_hash"}


def untimed(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k not in {"tokens_per_s", "train_seconds", "sequence", "checkpoint"}}


def research(events: list[envelope.events_pb2.Envelope]) -> dict[str, Any]:
    """What the run decided and measured, with the run's id and every timing field left out: what
    was proposed from which parent, how each experiment trained and was judged, and what was promoted."""
    projection = Projection()
    for env in events:
        projection.apply(env, envelope.unpack(env))
    (run,) = projection.runs.values()

    # Ids made from the run's (random) id, the architectures' and their experience entries', are
    # named by the order of the proposals.
    views = projection.of_run(run.run_id)
    names = {run.run_id: "RUN"} | {view.arch_id: f"arch-{n}" for n, view in enumerate(views)} \
        | {view.experience_id: f"exp-{n}" for n, view in enumerate(views) if view.experience_id}

    def anonymous(text: str) -> str:
        for real, name in names.items():
            text = text.replace(real, name)
        return text

    archs = {}
    for view in views:
        fields = {k: v for k, v in asdict(view).items() if k not in TIMED}
        fields["result"] = untimed(view.result)
        fields["replicates"] = {seed: {"status": r["status"], "result": untimed(r.get("result", {}))}
                                for seed, r in view.replicates.items()}
        archs[anonymous(view.arch_id)] = json.loads(anonymous(json.dumps(fields, sort_keys=True, default=str)))
    return {"archs": archs, "lineage": [(anonymous(p), anonymous(c)) for p, c in projection.lineage()],
            "outcomes": projection.summary()["outcomes"]}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("uninterrupted")
    done = subprocess.run(command(root / "asi"), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return research(exported(root / "asi", root / "run.jsonl"))


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGKILL, -9)])
def test_an_interrupted_run_resumes_to_the_projections_of_an_uninterrupted_one(
        sig: signal.Signals, code: int, uninterrupted: dict[str, Any], tmp_path: Path) -> None:
    data = tmp_path / "asi"
    first = subprocess.Popen(command(data), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert first.stderr is not None
    seen, started = [], 0
    # Interrupt as the first child starts training (after the two baselines): the run cannot end
    # before that child and the second have trained, so the signal never races its last event.
    for line in first.stderr:
        seen.append(line)
        started += " training on " in line
        if started == 3:
            break
    assert started == 3, "".join(seen[-30:])
    first.send_signal(sig)
    assert first.wait(timeout=90) == code
    before = exported(data, tmp_path / "before.jsonl")
    finished_before = {envelope.unpack(e).job_id for e in before if e.type == "TrainingFinished"}

    resumed = subprocess.run(command(data), capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming run" in resumed.stderr
    events = exported(data, tmp_path / "run.jsonl")
    finished = [envelope.unpack(e).job_id for e in events if e.type == "TrainingFinished"]
    assert len(finished) == len(set(finished)) and finished_before <= set(finished)  # nothing trained twice
    assert sum(e.type == "RunFinished" for e in events) == 1

    after = research(events)
    assert list(after["archs"]) == list(uninterrupted["archs"])
    for arch_id, view in uninterrupted["archs"].items():
        assert after["archs"][arch_id] == view, arch_id
    assert after == uninterrupted
