"""The analyst: explains every finished architecture, files the lesson as experience in
cognition, and answers lineage and leaderboard queries over gRPC."""

from __future__ import annotations

import json

import grpc

from services.analyst.analysis import analyze, code_diff, effects
from services.cognition.client import CognitionClient
from services.pb import cognition_pb2, events_pb2, lineage_pb2, lineage_pb2_grpc
from services.runtime import metrics
from services.runtime.app import EventService, Registrar, main
from services.runtime.envelope import event_id_for
from services.runtime.llm import LLMError, from_settings
from services.runtime.projection import ArchitectureView, Projection

EXPLANATION_SCHEMA = {"type": "object", "properties": {"summary": {"type": "string"}}, "required": ["summary"]}
EXPLANATION_SYSTEM = (
    "You analyse one experiment of an architecture search over linear-attention token mixers. Given the "
    "measured comparison, explain in at most four sentences what the change did and the most likely "
    "reason, so the next proposal can build on it. Answer with JSON: {\"summary\": text}."
)


class LineageServicer(lineage_pb2_grpc.LineageServicer):
    """A thin adapter from the analyst's projection to the Lineage API."""

    def __init__(self, projection: Projection) -> None:
        self.projection = projection

    async def GetLineage(self, request: lineage_pb2.GetLineageRequest,
                         context: grpc.aio.ServicerContext) -> lineage_pb2.GetLineageResponse:
        if request.arch_id not in self.projection.archs:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown architecture {request.arch_id}")
        children = [child for parent, child in self.projection.lineage() if parent == request.arch_id]
        return lineage_pb2.GetLineageResponse(ancestors=self.projection.ancestors(request.arch_id),
                                              children=children)

    async def GetLeaderboard(self, request: lineage_pb2.GetLeaderboardRequest,
                             context: grpc.aio.ServicerContext) -> lineage_pb2.GetLeaderboardResponse:
        rows = [lineage_pb2.LeaderboardRow(arch_id=a.arch_id, name=a.name, fitness=a.fitness or 0.0,
                                           val_loss=a.result.get("val_loss", 0.0),
                                           benchmark_mean=a.result.get("benchmark_mean", 0.0))
                for a in self.projection.leaderboard()[: request.k or 10]]
        return lineage_pb2.GetLeaderboardResponse(rows=rows, sequence=self.projection.events)


class AnalystService(EventService):
    name = "analyst"

    async def start(self) -> None:
        self.cognition = CognitionClient(self.settings.cognition_addr)
        self.llm = from_settings(self.settings)

    async def close(self) -> None:
        await self.cognition.close()

    def registrars(self) -> list[Registrar]:
        servicer = LineageServicer(self.projection)
        return [lambda server: lineage_pb2_grpc.add_LineageServicer_to_server(servicer, server)]

    async def react(self) -> None:
        metrics.record_discovery(self.projection)
        for arch in list(self.projection.archs.values()):
            if arch.status in {"judged", "discarded"}:
                await self._analyze(arch)

    async def _analyze(self, arch: ArchitectureView) -> None:
        archs = self.projection.archs
        parent = archs.get(arch.parents[0]) if arch.parents else None
        baselines = self.projection.baselines(arch.run_id)
        analysis = analyze(arch, parent, self.projection.baseline(arch.run_id), baselines[1:])
        siblings = [a for a in self.projection.of_run(arch.run_id)
                    if parent is not None and a.parents[:1] == [parent.arch_id] and a.arch_id != arch.arch_id]
        measured = effects(arch, parent, siblings, [b for b in baselines if b is not arch])
        summary, prompt, response, analysed_by = analysis.summary, "", "", "heuristic"
        if self.llm is not None and not arch.is_baseline:
            try:
                exchange = await self.llm.ask_json(
                    EXPLANATION_SYSTEM, f"{analysis.summary}\n\nMotivation: {arch.motivation}",
                    schema_name="analysis", schema=EXPLANATION_SCHEMA)
                summary = f"{analysis.summary} {exchange.answer['summary']}"
                prompt, response, analysed_by = exchange.prompt, exchange.response, self.llm.label
            except LLMError as exc:  # the measured analysis stands alone, and the log says so
                self.log.warning("analyst.llm_failed", arch_id=arch.arch_id, error=str(exc))
        experience_id = await self.cognition.add_experience(cognition_pb2.AddExperienceRequest(
            run_id=arch.run_id, arch_id=arch.arch_id, parent_id=parent.arch_id if parent else "",
            summary=summary, changes=analysis.changes, outcome=analysis.outcome,
            fitness=arch.fitness or 0.0, tags=list(analysis.tags),
        ))
        run = self.projection.runs.get(arch.run_id)
        await self.store.append(
            events_pb2.ArchitectureAnalyzed(arch_id=arch.arch_id, summary=summary,
                                            experience_id=experience_id, tags=list(analysis.tags),
                                            outcome=analysis.outcome, analyst=analysed_by, prompt=prompt,
                                            response=response, changes=analysis.changes,
                                            code_diff=code_diff(arch, parent),
                                            effects_json=json.dumps(measured, sort_keys=True)),
            run_id=arch.run_id, aggregate_id=arch.arch_id, event_id=event_id_for("analyzed", arch.arch_id),
            causation_id=arch.last_event_id, correlation_id=run.started_event_id if run else "",
        )
        metrics.EXPERIMENTS.labels(analysis.outcome).inc()
        self.log.info("architecture.analyzed", run_id=arch.run_id, arch_id=arch.arch_id, outcome=analysis.outcome)


if __name__ == "__main__":
    main(AnalystService)
