"""Projections: the state of runs and architectures as a fold over the event log.

Every service, the replay command and the audit command use this one fold, so what a
service acts on and what an auditor rebuilds from an exported file are the same thing.
Only event content enters the projection (no local clocks or stream positions), which
is what makes its digest identical on every replay of the same log.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from google.protobuf.message import Message

from services.pb import events_pb2

TERMINAL = {"analyzed", "rejected"}


@dataclass
class TrailEntry:
    sequence: int
    type: str
    producer: str
    detail: str


@dataclass
class ArchitectureView:
    arch_id: str
    run_id: str
    name: str
    parents: list[str]
    motivation: str
    code: str
    code_hash: str
    components: dict[str, str]
    origin: str
    citations: list[dict[str, Any]]
    mutation: str
    parent_selection: str
    mind: str
    is_baseline: bool
    fingerprint: str
    repair_of_attempt: int
    status: str = "proposed"
    llm_tokens: int = 0  # prompt + completion tokens of the exchange that wrote it
    job_id: str = ""
    progress: dict[str, float] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)
    failure: dict[str, str] = field(default_factory=dict)
    fitness: float | None = None
    terms: dict[str, float] = field(default_factory=dict)
    rationale: str = ""
    judge: str = ""
    analysis: str = ""
    outcome: str = ""
    experience_id: str = ""
    changes: str = ""
    analysis_tags: list[str] = field(default_factory=list)
    trail: list[TrailEntry] = field(default_factory=list)
    last_event_id: str = ""  # causation for the next reaction to this architecture

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


@dataclass
class RunView:
    run_id: str
    profile: str
    experiments: int
    seed: int
    mind: str
    corpus: str
    engineers: int
    started_event_id: str
    finished: bool = False
    best_arch_id: str = ""
    reason: str = ""
    llm_token_budget: int = 0  # 0: the researcher's default
    repairs: int = 0
    idea_retries: int = 0
    novelty_motivation_threshold: float = 0.0
    novelty_code_threshold: float = 0.0
    llm_tokens: int = 0  # spent by the researcher's LLM mind, from the answers' `usage`
    llm_failures: int = 0  # exchanges that produced no proposal


class Projection:
    def __init__(self) -> None:
        self.runs: dict[str, RunView] = {}
        self.archs: dict[str, ArchitectureView] = {}
        self.rejected_messages = 0
        self.knowledge_ingested: list[str] = []
        self.events = 0

    # -- the fold ----------------------------------------------------------------------------

    def apply(self, env: events_pb2.Envelope, event: Message) -> None:
        self.events += 1
        handler = getattr(self, f"_on_{env.type}", None)
        if handler is not None:
            handler(env, event)

    def _trail(self, arch_id: str, env: events_pb2.Envelope, detail: str) -> ArchitectureView | None:
        view = self.archs.get(arch_id)
        if view is not None:
            view.trail.append(TrailEntry(env.sequence, env.type, env.producer.service, detail))
            view.last_event_id = env.event_id
        return view

    def _on_RunStarted(self, env: events_pb2.Envelope, e: events_pb2.RunStarted) -> None:
        self.runs[env.run_id] = RunView(env.run_id, e.profile, e.experiments, e.seed, e.mind, e.corpus,
                                        e.engineers, env.event_id, llm_token_budget=e.llm_token_budget,
                                        repairs=e.repairs, idea_retries=e.idea_retries,
                                        novelty_motivation_threshold=e.novelty_motivation_threshold,
                                        novelty_code_threshold=e.novelty_code_threshold)

    def _on_RunFinished(self, env: events_pb2.Envelope, e: events_pb2.RunFinished) -> None:
        run = self.runs.get(env.run_id)
        if run is not None:
            run.finished, run.best_arch_id, run.reason = True, e.best_arch_id, e.reason

    def _on_ArchitectureProposed(self, env: events_pb2.Envelope, e: events_pb2.ArchitectureProposed) -> None:
        self.archs[e.arch_id] = ArchitectureView(
            arch_id=e.arch_id, run_id=env.run_id, name=e.name, parents=list(e.parent_ids),
            motivation=e.motivation, code=e.code, code_hash=e.code_hash, components=dict(e.components),
            origin=e.origin, citations=[{"entry_id": c.entry_id, "kind": c.kind, "score": round(c.score, 6)}
                                        for c in e.citations],
            mutation=e.mutation, parent_selection=e.parent_selection, mind=e.mind, is_baseline=e.is_baseline,
            fingerprint=e.fingerprint, repair_of_attempt=e.repair_of_attempt,
            llm_tokens=e.llm_prompt_tokens + e.llm_completion_tokens,
        )
        self.archs[e.arch_id].last_event_id = env.event_id
        run = self.runs.get(env.run_id)
        if run is not None:
            run.llm_tokens += e.llm_prompt_tokens + e.llm_completion_tokens
        parents = ", ".join(e.parent_ids) or "none"
        self._trail(e.arch_id, env, f"proposed {e.name!r} (origin {e.origin}; parents {parents}): {e.mutation}")

    def _on_ProposalRejected(self, env: events_pb2.Envelope, e: events_pb2.ProposalRejected) -> None:
        view = self._trail(e.arch_id, env, f"rejected by the {e.gate} gate: {e.reason}")
        if view:
            view.status = "rejected"
            view.failure = {"kind": e.gate, "message": e.reason}

    def _on_TrainingRequested(self, env: events_pb2.Envelope, e: events_pb2.TrainingRequested) -> None:
        view = self._trail(e.arch_id, env, f"training requested: profile {e.profile}, seed {e.seed}")
        if view:
            view.status, view.job_id = "queued", e.job_id

    def _on_TrainingStarted(self, env: events_pb2.Envelope, e: events_pb2.TrainingStarted) -> None:
        view = self._trail(e.arch_id, env, f"training started on {e.worker} (delivery {e.delivery})")
        if view and view.status == "queued":
            view.status = "training"

    def _on_TrainingProgress(self, env: events_pb2.Envelope, e: events_pb2.TrainingProgress) -> None:
        view = self.archs.get(e.arch_id)
        if view:
            view.progress = {"step": e.step, "steps": e.steps, "train_loss": e.train_loss}

    def _on_TrainingFinished(self, env: events_pb2.Envelope, e: events_pb2.TrainingFinished) -> None:
        view = self._trail(e.arch_id, env, f"trained: val_loss {e.val_loss:.4f}, benchmark mean "
                                           f"{e.benchmark_mean:.3f}, {e.params} params, {e.train_seconds:.1f}s")
        if view and view.status in {"queued", "training"}:
            view.status = "trained"
            view.result = {"val_loss": e.val_loss, "benchmarks": dict(sorted(e.benchmarks.items())),
                           "benchmark_mean": e.benchmark_mean, "params": e.params,
                           "tokens_per_s": e.tokens_per_s, "train_seconds": e.train_seconds,
                           "checkpoint": e.checkpoint}

    def _on_TrainingFailed(self, env: events_pb2.Envelope, e: events_pb2.TrainingFailed) -> None:
        view = self._trail(e.arch_id, env, f"training failed ({e.kind}): {e.message}")
        if view and view.status in {"queued", "training"}:
            view.status = "failed"
            view.failure = {"kind": e.kind, "message": e.message}

    def _on_ArchitectureJudged(self, env: events_pb2.Envelope, e: events_pb2.ArchitectureJudged) -> None:
        terms = ", ".join(f"{k} {v:.3f}" for k, v in sorted(e.terms.items()))
        view = self._trail(e.arch_id, env, f"judged fitness {e.fitness:.4f} ({terms}) by {e.judge}: {e.rationale}")
        if view and view.status == "trained":
            view.status = "judged"
            view.fitness, view.terms = e.fitness, dict(sorted(e.terms.items()))
            view.rationale, view.judge = e.rationale, e.judge

    def _on_ArchitectureDiscarded(self, env: events_pb2.Envelope, e: events_pb2.ArchitectureDiscarded) -> None:
        view = self._trail(e.arch_id, env, f"discarded: {e.reason}")
        if view and view.status == "failed":
            view.status = "discarded"

    def _on_ArchitectureAnalyzed(self, env: events_pb2.Envelope, e: events_pb2.ArchitectureAnalyzed) -> None:
        view = self._trail(e.arch_id, env, f"analyzed ({e.outcome}): {e.summary}")
        if view and view.status in {"judged", "discarded"}:
            view.status = "analyzed"
            view.analysis, view.outcome, view.experience_id = e.summary, e.outcome, e.experience_id
            view.changes, view.analysis_tags = e.changes, list(e.tags)

    def _on_LLMExchangeFailed(self, env: events_pb2.Envelope, e: events_pb2.LLMExchangeFailed) -> None:
        run = self.runs.get(env.run_id)
        if run is not None:
            run.llm_tokens += e.prompt_tokens + e.completion_tokens
            run.llm_failures += 1

    def _on_EventRejected(self, env: events_pb2.Envelope, e: events_pb2.EventRejected) -> None:
        self.rejected_messages += 1

    def _on_KnowledgeIngested(self, env: events_pb2.Envelope, e: events_pb2.KnowledgeIngested) -> None:
        self.knowledge_ingested.extend(e.entry_ids)

    # -- views -----------------------------------------------------------------------------------

    def latest_run(self) -> RunView | None:
        return next(reversed(self.runs.values()), None)

    def of_run(self, run_id: str) -> list[ArchitectureView]:
        return [a for a in self.archs.values() if a.run_id == run_id]

    def baseline(self, run_id: str) -> ArchitectureView | None:
        return next((a for a in self.of_run(run_id) if a.is_baseline), None)

    def experiments(self, run_id: str | None = None) -> list[ArchitectureView]:
        """Proposals that went on to training: the experiments of the budget."""
        return [a for a in self.archs.values()
                if not a.is_baseline and a.status != "rejected" and (run_id is None or a.run_id == run_id)]

    def leaderboard(self, run_id: str | None = None) -> list[ArchitectureView]:
        judged = [a for a in self.archs.values()
                  if a.fitness is not None and (run_id is None or a.run_id == run_id)]
        return sorted(judged, key=lambda a: (-a.fitness, a.arch_id))  # type: ignore[operator]

    def lineage(self) -> list[tuple[str, str]]:
        return [(p, a.arch_id) for a in self.archs.values() for p in a.parents]

    def ancestors(self, arch_id: str) -> list[str]:
        """Every ancestor, nearest first."""
        found: list[str] = []
        frontier = list(self.archs[arch_id].parents)
        while frontier:
            parent = frontier.pop(0)
            if parent not in found:
                found.append(parent)
                frontier.extend(self.archs[parent].parents if parent in self.archs else [])
        return found

    def descendants(self, arch_id: str) -> list[str]:
        """Every descendant, breadth first."""
        children: dict[str, list[str]] = {}
        for parent, child in self.lineage():
            children.setdefault(parent, []).append(child)
        found: list[str] = []
        frontier = [arch_id]
        while frontier:
            for child in children.get(frontier.pop(0), []):
                if child not in found:
                    found.append(child)
                    frontier.append(child)
        return found

    def analytics(self, run_id: str) -> dict[str, Any]:
        """The run-level analyses of the paper: discoveries (experiments that beat the baseline)
        over time, where the winning ideas came from, and which components win how often."""
        experiments = [a for a in self.experiments(run_id) if a.fitness is not None or a.terminal]
        baseline = self.baseline(run_id)
        bar = baseline.fitness if baseline is not None and baseline.fitness is not None else 0.5
        wins = [a for a in experiments if a.fitness is not None and a.fitness > bar]
        curve, found = [], 0
        for n, arch in enumerate(experiments, start=1):
            found += arch in wins
            curve.append({"experiments": n, "discoveries": found})
        origins: dict[str, int] = {}
        for arch in wins:
            origins[arch.origin] = origins.get(arch.origin, 0) + 1
        components: dict[str, dict[str, int]] = {}
        for arch in experiments:
            for axis, value in arch.components.items():
                row = components.setdefault(f"{axis}={value}", {"tried": 0, "won": 0})
                row["tried"] += 1
                row["won"] += arch in wins
        return {
            "run_id": run_id, "experiments": len(experiments), "discoveries": len(wins), "baseline_fitness": bar,
            "discovery_curve": curve,
            "origins_of_discoveries": {k: {"count": v, "share": round(v / len(wins), 4)}
                                       for k, v in sorted(origins.items())},
            "components": {k: {**v, "win_rate": round(v["won"] / v["tried"], 4)}
                           for k, v in sorted(components.items())},
        }

    def summary(self) -> dict[str, Any]:
        """Everything replay reports, with a digest over it."""
        body = {
            "runs": [asdict(r) for r in self.runs.values()],
            "events": self.events,
            "experiments": len(self.experiments()),
            "outcomes": self._outcomes(),
            "leaderboard": [
                {"arch_id": a.arch_id, "name": a.name, "fitness": round(a.fitness or 0.0, 6),
                 "val_loss": round(a.result.get("val_loss", 0.0), 6),
                 "benchmark_mean": round(a.result.get("benchmark_mean", 0.0), 6),
                 "is_baseline": a.is_baseline, "origin": a.origin}
                for a in self.leaderboard()
            ],
            "lineage": [{"parent": p, "child": c} for p, c in self.lineage()],
            "rejected_messages": self.rejected_messages,
        }
        body["digest"] = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        return body

    def _outcomes(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for a in self.archs.values():
            key = a.outcome or a.status
            counts[key] = counts.get(key, 0) + 1
        return dict(sorted(counts.items()))
