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


def _complexity_exponent(checks_json: str) -> float | None:
    """The complexity probe's cost exponent from a training's pre-flight checks, if it ran."""
    try:
        return float(json.loads(checks_json)["complexity"]["exponent"])
    except (ValueError, KeyError, TypeError):
        return None


def _json(text: str) -> dict[str, Any]:
    """A JSON field of an event; one that does not parse is kept as text rather than stopping the fold."""
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {"unreadable": text[:200]}
    return value if isinstance(value, dict) else {"value": value}


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
    operator: str = ""
    parent_strategy: str = ""
    selection: dict[str, Any] = field(default_factory=dict)  # the numbers behind the choice of parents
    status: str = "proposed"
    llm_tokens: int = 0  # prompt + completion tokens of the exchange that wrote it
    # The earlier proposal whose code embeds closest, by the researcher's novelty gate; "" for none.
    nearest_code_id: str = ""
    code_similarity: float = 0.0
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
    seed: int = 0  # the seed of the architecture's own training
    # Seed replicates requested by the judge, by seed: {"job_id", "status", "result" | "failure"}.
    # Kept apart from `result`: a replicate never moves the status above.
    replicates: dict[int, dict[str, Any]] = field(default_factory=dict)
    baseline_ids: list[str] = field(default_factory=list)  # the baselines the judge compared against
    judgement: dict[str, Any] = field(default_factory=dict)  # every term and its inputs per baseline
    leak: dict[str, Any] = field(default_factory=dict)  # the leak rule's verdict and evidence, if triggered
    promotion: dict[str, Any] = field(default_factory=dict)  # status: pending | requested | promoted | denied
    code_diff: str = ""
    effects: dict[str, Any] = field(default_factory=dict)
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
    parent_strategy: str = ""
    seed_architectures: list[dict[str, str]] = field(default_factory=list)  # {"name", "code"}
    finished: bool = False
    best_arch_id: str = ""
    reason: str = ""
    llm_token_budget: int = 0  # 0: the researcher's default
    repairs: int = 0
    idea_retries: int = 0
    novelty_motivation_threshold: float = 0.0
    novelty_code_threshold: float = 0.0
    promotion_profile: str = ""  # "": the run's profile
    preset: str = ""
    llm_tokens: int = 0  # spent by the researcher's LLM mind, from the answers' `usage`
    llm_failures: int = 0  # exchanges that produced no proposal

    @property
    def promoted_at(self) -> str:
        """The profile promotions re-train at."""
        return self.promotion_profile or self.profile


def _selection(text: str) -> dict[str, Any]:
    """The numbers behind a parent choice; a payload that is not a JSON object is kept as text, not fatal."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {"unreadable": text}
    return value if isinstance(value, dict) else {"unreadable": text}


class Projection:
    def __init__(self) -> None:
        self.runs: dict[str, RunView] = {}
        self.archs: dict[str, ArchitectureView] = {}
        self.rejected_messages = 0
        self.knowledge_ingested: list[str] = []
        self.events = 0
        self.replicate_jobs: dict[str, tuple[str, int]] = {}  # job id -> (arch id, seed)

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
                                        e.engineers, env.event_id, parent_strategy=e.parent_strategy,
                                        seed_architectures=[{"name": a.name, "code": a.code}
                                                            for a in e.seed_architectures],
                                        llm_token_budget=e.llm_token_budget,
                                        repairs=e.repairs, idea_retries=e.idea_retries,
                                        novelty_motivation_threshold=e.novelty_motivation_threshold,
                                        novelty_code_threshold=e.novelty_code_threshold,
                                        promotion_profile=e.promotion_profile, preset=e.preset)

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
            fingerprint=e.fingerprint, repair_of_attempt=e.repair_of_attempt, operator=e.operator,
            parent_strategy=e.parent_strategy, selection=_selection(e.selection_json),
            llm_tokens=e.llm_prompt_tokens + e.llm_completion_tokens,
            nearest_code_id=e.nearest_code_id, code_similarity=round(e.code_similarity, 6),
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
        what = "replicate training" if e.purpose == "replicate" else "training"
        view = self._trail(e.arch_id, env, f"{what} requested: profile {e.profile}, seed {e.seed}")
        if view and e.purpose == "replicate":
            self.replicate_jobs[e.job_id] = (e.arch_id, e.seed)
            view.replicates.setdefault(e.seed, {"job_id": e.job_id, "status": "queued"})
        elif view:
            view.status, view.job_id, view.seed = "queued", e.job_id, e.seed

    def _replicate(self, job_id: str) -> dict[str, Any] | None:
        """The replicate entry a job reports on, or None for an architecture's own training."""
        if job_id not in self.replicate_jobs:
            return None
        arch_id, seed = self.replicate_jobs[job_id]
        entry = self.archs[arch_id].replicates[seed]
        return entry if entry["job_id"] == job_id else None

    def _on_TrainingStarted(self, env: events_pb2.Envelope, e: events_pb2.TrainingStarted) -> None:
        view = self._trail(e.arch_id, env, f"training started on {e.worker} (delivery {e.delivery})")
        replicate = self._replicate(e.job_id) if view else None
        if replicate is not None:
            replicate["status"] = "training" if replicate["status"] == "queued" else replicate["status"]
        elif view and view.status == "queued":
            view.status = "training"

    def _on_TrainingProgress(self, env: events_pb2.Envelope, e: events_pb2.TrainingProgress) -> None:
        view = self.archs.get(e.arch_id)
        if view and e.job_id not in self.replicate_jobs:
            view.progress = {"step": e.step, "steps": e.steps, "train_loss": e.train_loss}

    def _on_TrainingFinished(self, env: events_pb2.Envelope, e: events_pb2.TrainingFinished) -> None:
        view = self._trail(e.arch_id, env, f"trained: val_loss {e.val_loss:.4f}, benchmark mean "
                                           f"{e.benchmark_mean:.3f}, {e.params} params, {e.train_seconds:.1f}s")
        replicate = self._replicate(e.job_id) if view else None
        result = {"val_loss": e.val_loss, "benchmarks": dict(sorted(e.benchmarks.items())),
                  "benchmark_mean": e.benchmark_mean, "params": e.params, "tokens_per_s": e.tokens_per_s,
                  "flops_per_token": e.flops_per_token, "train_seconds": e.train_seconds, "checkpoint": e.checkpoint,
                  "complexity_exponent": _complexity_exponent(e.checks_json), "sequence": env.sequence}
        if replicate is not None:
            if replicate["status"] in {"queued", "training"}:
                replicate.update(status="trained", result=result)
        elif view and view.status in {"queued", "training"}:
            view.status = "trained"
            view.result = result

    def _on_TrainingFailed(self, env: events_pb2.Envelope, e: events_pb2.TrainingFailed) -> None:
        view = self._trail(e.arch_id, env, f"training failed ({e.kind}): {e.message}")
        replicate = self._replicate(e.job_id) if view else None
        if replicate is not None:
            if replicate["status"] in {"queued", "training"}:
                replicate.update(status="failed", failure={"kind": e.kind, "message": e.message})
        elif view and view.status in {"queued", "training"}:
            view.status = "failed"
            view.failure = {"kind": e.kind, "message": e.message}

    def _on_ArchitectureJudged(self, env: events_pb2.Envelope, e: events_pb2.ArchitectureJudged) -> None:
        terms = ", ".join(f"{k} {v:.3f}" for k, v in sorted(e.terms.items()))
        view = self._trail(e.arch_id, env, f"judged fitness {e.fitness:.4f} ({terms}) by {e.judge}: {e.rationale}")
        if view and view.status == "trained":
            view.status = "judged"
            view.fitness, view.terms = e.fitness, dict(sorted(e.terms.items()))
            view.rationale, view.judge = e.rationale, e.judge
            view.baseline_ids = list(e.baseline_arch_ids) or ([e.baseline_arch_id] if e.baseline_arch_id else [])
            view.judgement = _json(e.terms_json)
            if e.promote:
                view.promotion = {"status": "pending"}

    def _on_LeakChecked(self, env: events_pb2.Envelope, e: events_pb2.LeakChecked) -> None:
        view = self._trail(e.arch_id, env, f"leak rule: {e.verdict} ({e.reason})")
        if view:
            view.leak = {"verdict": e.verdict, "reason": e.reason, "evidence": _json(e.evidence_json)}

    def _on_PromotionRequested(self, env: events_pb2.Envelope, e: events_pb2.PromotionRequested) -> None:
        view = self._trail(e.arch_id, env, f"promotion requested on seeds {list(e.seeds)}: {e.reason}")
        if view:
            view.promotion = {"status": "requested", "seeds": list(e.seeds), "baselines": list(e.baseline_arch_ids),
                              "test": e.test, "reason": e.reason, "jobs": _json(e.jobs_json)}

    def _decided(self, env: events_pb2.Envelope, e: events_pb2.ArchitecturePromoted | events_pb2.PromotionDenied,
                 status: str) -> None:
        view = self._trail(e.arch_id, env, f"{status}: {e.decision}")
        if view:
            view.promotion = {**view.promotion, "status": status, "seeds": list(e.seeds),
                              "per_seed": _json(e.per_seed_json), "test": e.test,
                              "statistics": _json(e.statistics_json), "decision": e.decision,
                              "sequence": env.sequence}

    def _on_ArchitecturePromoted(self, env: events_pb2.Envelope, e: events_pb2.ArchitecturePromoted) -> None:
        self._decided(env, e, "promoted")

    def _on_PromotionDenied(self, env: events_pb2.Envelope, e: events_pb2.PromotionDenied) -> None:
        self._decided(env, e, "denied")

    def _on_ArchitectureDiscarded(self, env: events_pb2.Envelope, e: events_pb2.ArchitectureDiscarded) -> None:
        view = self._trail(e.arch_id, env, f"discarded: {e.reason}")
        if view and view.status == "trained":  # the leak rule: trained, but its result is not trusted
            view.failure = {"kind": e.failure_kind, "message": e.reason}
        if view and view.status in {"failed", "trained"}:
            view.status = "discarded"

    def _on_ArchitectureAnalyzed(self, env: events_pb2.Envelope, e: events_pb2.ArchitectureAnalyzed) -> None:
        view = self._trail(e.arch_id, env, f"analyzed ({e.outcome}): {e.summary}")
        if view and view.status in {"judged", "discarded"}:
            view.status = "analyzed"
            view.analysis, view.outcome, view.experience_id = e.summary, e.outcome, e.experience_id
            view.changes, view.analysis_tags = e.changes, list(e.tags)
            view.code_diff, view.effects = e.code_diff, _json(e.effects_json)

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
        """The seed baseline: the run's first proposal, the root of its lineage."""
        return next((a for a in self.of_run(run_id) if a.is_baseline), None)

    def baselines(self, run_id: str) -> list[ArchitectureView]:
        """Every baseline of the run, the seed first: what the judge compares candidates against."""
        return [a for a in self.of_run(run_id) if a.is_baseline]

    def promotions_pending(self, run_id: str) -> list[ArchitectureView]:
        """Candidates chosen for promotion whose decision is not in the log yet."""
        return [a for a in self.of_run(run_id) if a.promotion.get("status") in {"pending", "requested"}]

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
            "promotions": [{"arch_id": a.arch_id, "status": a.promotion["status"],
                            "decision": a.promotion.get("decision", "")}
                           for a in self.archs.values() if a.promotion],
        }
        body["digest"] = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        return body

    def _outcomes(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for a in self.archs.values():
            key = a.outcome or a.status
            counts[key] = counts.get(key, 0) + 1
        return dict(sorted(counts.items()))
