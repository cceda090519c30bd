"""The judge: turns each finished training into a fitness against the run's baseline."""

from __future__ import annotations

from services.judge.fitness import judge
from services.pb import events_pb2
from services.runtime.app import EventService, main
from services.runtime.envelope import event_id_for
from services.runtime.projection import ArchitectureView


class JudgeService(EventService):
    name = "judge"

    async def react(self) -> None:
        for run in self.projection.runs.values():
            baseline = self.projection.baseline(run.run_id)
            if baseline is None or not baseline.result:
                continue  # nothing can be judged before the baseline has trained
            for arch in self.projection.of_run(run.run_id):
                if arch.status == "trained":
                    await self._judge(arch, baseline, run.started_event_id)

    async def _judge(self, arch: ArchitectureView, baseline: ArchitectureView, correlation_id: str) -> None:
        verdict = judge(arch.result, baseline.result)
        await self.store.append(
            events_pb2.ArchitectureJudged(arch_id=arch.arch_id, fitness=verdict.fitness, terms=verdict.terms,
                                          rationale=verdict.rationale, baseline_arch_id=baseline.arch_id,
                                          judge="heuristic"),
            run_id=arch.run_id, aggregate_id=arch.arch_id, event_id=event_id_for("judged", arch.arch_id),
            causation_id=arch.last_event_id, correlation_id=correlation_id,
        )
        self.log.info("architecture.judged", run_id=arch.run_id, arch_id=arch.arch_id, fitness=verdict.fitness)


if __name__ == "__main__":
    main(JudgeService)
