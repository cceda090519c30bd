"""The judge: turns each finished training into a fitness against the run's baseline."""

from __future__ import annotations

from services.judge.fitness import judge
from services.judge.rubric import llm_quality
from services.pb import events_pb2
from services.runtime.app import EventService, main
from services.runtime.envelope import event_id_for
from services.runtime.llm import LLMError, from_settings
from services.runtime.projection import ArchitectureView


class JudgeService(EventService):
    name = "judge"

    async def start(self) -> None:
        self.llm = from_settings(self.settings.llm_url, self.settings.llm_model)

    async def react(self) -> None:
        for run in self.projection.runs.values():
            baseline = self.projection.baseline(run.run_id)
            if baseline is None or not baseline.result:
                continue  # nothing can be judged before the baseline has trained
            for arch in self.projection.of_run(run.run_id):
                if arch.status == "trained":
                    await self._judge(arch, baseline, run.started_event_id)

    async def _judge(self, arch: ArchitectureView, baseline: ArchitectureView, correlation_id: str) -> None:
        quality, prompt, response, judged_by = None, "", "", "heuristic"
        if self.llm is not None:
            try:
                quality, exchange = await llm_quality(self.llm, arch, baseline)
                prompt, response, judged_by = exchange.prompt, exchange.response, self.llm.label
            except LLMError as exc:  # the measured rubric stands in, and the log says so
                self.log.warning("judge.llm_failed", arch_id=arch.arch_id, error=str(exc))
        verdict = judge(arch.result, baseline.result, quality)
        await self.store.append(
            events_pb2.ArchitectureJudged(arch_id=arch.arch_id, fitness=verdict.fitness, terms=verdict.terms,
                                          rationale=verdict.rationale, baseline_arch_id=baseline.arch_id,
                                          judge=judged_by, prompt=prompt, response=response),
            run_id=arch.run_id, aggregate_id=arch.arch_id, event_id=event_id_for("judged", arch.arch_id),
            causation_id=arch.last_event_id, correlation_id=correlation_id,
        )
        self.log.info("architecture.judged", run_id=arch.run_id, arch_id=arch.arch_id, fitness=verdict.fitness)


if __name__ == "__main__":
    main(JudgeService)
