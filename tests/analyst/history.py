"""Hand-built event logs whose analytics are known by construction, sealed into a real hash chain
so the same log serves the in-process fold and `asi-arch report --file`.

The main history (`full_history`): two baselines and six candidates, every training 10 s.

| arch | origin     | changed vs seed           | fitness | outcome                                 |
|------|------------|---------------------------|---------|-----------------------------------------|
| c1   | literature | decay=scalar              | 0.60    | promoted (3 seeds)                      |
| c2   | experience | conv=none                 | 0.55    | denied                                  |
| c3   | original   | decay=scalar, conv=none   | 0.70    | promoted                                |
| c4   | literature | decay=vector              | 0.40    | not chosen                              |
| c5   | original   | gate=output               | -       | training failed, discarded              |
| c6   | original   | feature_map=relu          | -       | trained, discarded by the leak rule     |
"""

from __future__ import annotations

import json
from pathlib import Path

from google.protobuf.message import Message

from services.pb import events_pb2
from services.runtime import envelope
from services.runtime.logfile import fold
from services.runtime.projection import Projection

RUN = "run-h"
SEED = {"update": "delta", "decay": "none", "conv": "short", "gate": "none", "feature_map": "silu"}
SECONDS = 10.0


class History:
    def __init__(self) -> None:
        self.events: list[events_pb2.Envelope] = []
        self.versions: dict[str, int] = {}

    def add(self, payload: Message, aggregate: str) -> events_pb2.Envelope:
        env = envelope.build(payload, run_id=RUN, aggregate_id=aggregate, service="test")
        self.versions[aggregate] = self.versions.get(aggregate, 0) + 1
        envelope.seal(env, sequence=len(self.events) + 1,
                      prev_hash=self.events[-1].hash if self.events else envelope.GENESIS,
                      aggregate_version=self.versions[aggregate])
        self.events.append(env)
        return env

    def start(self, experiments: int = 6) -> None:
        self.add(events_pb2.RunStarted(profile="tiny", experiments=experiments, seed=0), RUN)

    def propose(self, arch: str, *, changes: dict[str, str] | None = None, parent: str = "", origin: str = "seed",
                baseline: bool = False, genome: bool = True) -> None:
        components = {**SEED, **(changes or {})} if genome else {}
        self.add(events_pb2.ArchitectureProposed(arch_id=arch, name=arch, parent_ids=[parent] if parent else [],
                                                 components=components, origin=origin, is_baseline=baseline,
                                                 code=f"# {arch}\n", motivation=f"why {arch}",
                                                 fingerprint=f"fp-{arch}"), arch)

    def train(self, arch: str, val_loss: float, bench: float, *, seed: int = 0, replicate: bool = False) -> None:
        job = f"job-{arch}-seed{seed}" if replicate else f"job-{arch}"
        self.add(events_pb2.TrainingRequested(arch_id=arch, job_id=job, profile="tiny", seed=seed,
                                              purpose="replicate" if replicate else ""), arch)
        self.add(events_pb2.TrainingFinished(arch_id=arch, job_id=job, val_loss=val_loss, benchmark_mean=bench,
                                             benchmarks={"mqar": bench}, params=1000, tokens_per_s=1000.0,
                                             flops_per_token=1.0e6, train_seconds=SECONDS), arch)

    def fail(self, arch: str) -> None:
        self.add(events_pb2.TrainingRequested(arch_id=arch, job_id=f"job-{arch}", profile="tiny"), arch)
        self.add(events_pb2.TrainingFailed(arch_id=arch, job_id=f"job-{arch}", kind="runtime_error",
                                           message="boom"), arch)
        self.add(events_pb2.ArchitectureDiscarded(arch_id=arch, reason="training failed", failure_kind="runtime_error"),
                 arch)

    def judge(self, arch: str, fitness: float, promote: bool = False) -> None:
        self.add(events_pb2.ArchitectureJudged(arch_id=arch, fitness=fitness, promote=promote,
                                               baseline_arch_ids=["b1", "b2"]), arch)

    def analyze(self, arch: str, outcome: str = "improved") -> None:
        self.add(events_pb2.ArchitectureAnalyzed(arch_id=arch, outcome=outcome, summary=arch), arch)

    def promote(self, arch: str, per_seed: dict[str, dict[int, tuple[float, float]]], promoted: bool) -> None:
        fields = {"arch_id": arch, "seeds": [0, 1, 2], "test": "paired t", "decision": "SOTA" if promoted else "no",
                  "per_seed_json": json.dumps({a: {str(s): {"val_loss": v[0], "benchmark_mean": v[1]}
                                                   for s, v in rows.items()} for a, rows in per_seed.items()})}
        self.add(events_pb2.ArchitecturePromoted(**fields) if promoted else events_pb2.PromotionDenied(**fields), arch)

    def write(self, path: Path) -> Path:
        path.write_text("".join(envelope.to_line(e) + "\n" for e in self.events))
        return path

    def projection(self) -> Projection:
        return fold(self.events)


BASELINE_RUNS = {"b1": {0: (3.0, 0.30), 1: (3.1, 0.32), 2: (3.05, 0.31)},
                 "b2": {0: (2.9, 0.28), 1: (2.95, 0.27), 2: (2.92, 0.29)}}


def _replicated(h: History, arch: str, runs: dict[int, tuple[float, float]], fitness: float, promoted: bool,
                first: bool) -> None:
    h.train(arch, *runs[0])
    h.judge(arch, fitness, promote=True)
    h.add(events_pb2.PromotionRequested(arch_id=arch, seeds=[0, 1, 2], baseline_arch_ids=["b1", "b2"]), arch)
    for seed in (1, 2):
        h.train(arch, *runs[seed], seed=seed, replicate=True)
    if first:  # the baselines' extra seeds are trained once, for the first promotion
        for base, rows in BASELINE_RUNS.items():
            for seed in (1, 2):
                h.train(base, *rows[seed], seed=seed, replicate=True)
    h.analyze(arch)
    h.promote(arch, {arch: runs, **BASELINE_RUNS}, promoted)


def full_history(finished: bool = True) -> History:
    h = History()
    h.start()
    h.propose("b1", baseline=True)
    h.propose("b2", baseline=True, genome=False)
    for base in ("b1", "b2"):
        h.train(base, *BASELINE_RUNS[base][0])
    h.judge("b1", 0.50)
    h.judge("b2", 0.52)
    h.analyze("b1", "baseline")
    h.analyze("b2", "baseline")
    h.propose("c1", changes={"decay": "scalar"}, parent="b1", origin="literature")
    _replicated(h, "c1", {0: (2.70, 0.40), 1: (2.72, 0.46), 2: (2.74, 0.49)}, 0.60, True, first=True)
    h.propose("c2", changes={"conv": "none"}, parent="c1", origin="experience")
    _replicated(h, "c2", {0: (2.95, 0.50), 1: (2.90, 0.49), 2: (2.85, 0.51)}, 0.55, False, first=False)
    h.propose("c3", changes={"decay": "scalar", "conv": "none"}, parent="c1", origin="original")
    _replicated(h, "c3", {0: (2.50, 0.60), 1: (2.55, 0.59), 2: (2.52, 0.61)}, 0.70, True, first=False)
    h.propose("c4", changes={"decay": "vector"}, parent="c1", origin="literature")
    h.train("c4", 3.2, 0.2)
    h.judge("c4", 0.40)
    h.analyze("c4", "regressed")
    h.propose("c5", changes={"gate": "output"}, parent="c3", origin="original")
    h.fail("c5")
    h.analyze("c5", "failed")
    h.propose("c6", changes={"feature_map": "relu"}, parent="c3", origin="original")
    h.train("c6", 0.81, 0.9)
    h.add(events_pb2.LeakChecked(arch_id="c6", verdict="leak", reason="not causal at length 144",
                                 evidence_json=json.dumps({"causality": {"causal": False}})), "c6")
    h.add(events_pb2.ArchitectureDiscarded(arch_id="c6", reason="leak: ...", failure_kind="leak"), "c6")
    h.analyze("c6", "failed")
    if finished:
        h.add(events_pb2.RunFinished(experiments=6, best_arch_id="c3", reason="experiment budget spent"), RUN)
    return h
