"""The judge: turns each finished training into a fitness against the run's baselines, applies
the leak rule to results too good to trust, and promotes the best candidates to SOTA only after
seed-replicated re-runs beside both baselines (see the judge's README)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

from services.judge import leak, promotion
from services.judge.baselines import RUN_BASELINES
from services.judge.fitness import Context, judge
from services.judge.rubric import llm_quality
from services.pb import events_pb2, jobs_pb2
from services.runtime import jobs
from services.runtime.app import EventService, main
from services.runtime.envelope import event_id_for
from services.runtime.llm import LLMError, from_settings
from services.runtime.projection import ArchitectureView, RunView


def novelty_context(arch: ArchitectureView, earlier: list[ArchitectureView]) -> Context:
    """The candidate's complexity exponent and its distances to the nearest earlier design of the run: in
    genome axes, by function (the fingerprint) and by code embedding (recorded by the novelty gate)."""
    twin = next((a.arch_id for a in earlier if arch.fingerprint and a.fingerprint == arch.fingerprint), "")
    axes = None
    if arch.components:
        distances = [sum(arch.components.get(k) != a.components.get(k) for k in set(arch.components) |
                         set(a.components)) for a in earlier if a.components]
        axes = min(distances) if distances else None
    return Context(complexity_exponent=arch.result.get("complexity_exponent"), novelty_axes=axes,
                   same_function_as=twin,
                   code_distance=round(1.0 - arch.code_similarity, 6) if arch.nearest_code_id else None)


class JudgeService(EventService):
    name = "judge"

    async def start(self) -> None:
        self.llm = from_settings(self.settings)
        self.promotion = promotion.PromotionConfig(top_k=self.settings.promote_top_k,
                                                   seeds=self.settings.promote_seeds,
                                                   above_baselines=self.settings.promote_above_baselines,
                                                   screen=self.settings.promote_screen)
        self.submitted: set[str] = set()  # replicate jobs this process has put on the queue

    async def react(self) -> None:
        for run in self.projection.runs.values():
            baselines = self.projection.baselines(run.run_id)
            archs = self.projection.of_run(run.run_id)
            # Every baseline must be in the log before anything is judged: the researcher proposes
            # them all before the first child, so a child (or the full set) proves none is missing.
            all_proposed = len(baselines) >= len(RUN_BASELINES) or any(not a.is_baseline for a in archs)
            settled = all(b.result or b.failure for b in baselines)
            trained = [b for b in baselines if b.result]
            if not baselines or not (all_proposed or run.finished) or not settled or not trained:
                continue  # nothing can be judged before the baselines have trained
            for base in trained:
                if base.status == "trained":
                    await self._judge(base, trained, run, promote=False)
            if any(b.fitness is None for b in trained):
                continue  # candidates wait until the baselines' own fitness is in the log
            await self._judge_candidates(run, trained)
            await self._promotions(run, trained)

    async def _judge_candidates(self, run: RunView, trained: list[ArchitectureView]) -> None:
        best_baseline = max(b.fitness or 0.0 for b in trained)
        candidates = [a for a in self.projection.of_run(run.run_id) if not a.is_baseline]
        earlier = promotion.standing(candidates)
        requested = sum(bool(a.promotion) for a in candidates)
        for arch in candidates:
            if arch.status != "trained":
                continue
            fitness = await self._judge(arch, trained, run, best_baseline=best_baseline, earlier=earlier,
                                        requested=requested)
            if fitness is not None:
                requested += fitness[1]
                earlier.append(fitness[0])

    async def _judge(self, arch: ArchitectureView, baselines: list[ArchitectureView], run: RunView, *,
                     promote: bool | None = None, best_baseline: float = 0.0, earlier: Sequence[float] = (),
                     requested: int = 0) -> tuple[float, bool] | None:
        """Judge one trained architecture; (fitness, promoted?) or None when the leak rule discarded it."""
        results = {b.arch_id: b.result for b in baselines}
        common = {"run_id": arch.run_id, "aggregate_id": arch.arch_id, "correlation_id": run.started_event_id}
        leak_check = "not_triggered"
        triggered = None if arch.is_baseline else leak.trigger(arch.result, results)
        if triggered is not None:
            verdict = await self._leak_check(arch, run, triggered)
            if verdict == "leak":
                return None
            leak_check = "verified"
        quality, prompt, response, judged_by = None, "", "", "heuristic"
        if self.llm is not None:
            try:
                quality, exchange = await llm_quality(self.llm, arch, baselines)
                prompt, response, judged_by = exchange.prompt, exchange.response, self.llm.label
            except LLMError as exc:  # the measured rubric stands in, and the log says so
                self.log.warning("judge.llm_failed", arch_id=arch.arch_id, error=str(exc))
        run_archs = self.projection.of_run(arch.run_id)
        verdict = judge(arch.result, results, quality, novelty_context(arch, run_archs[: run_archs.index(arch)]))
        if promote is None:
            reason = promotion.choose(verdict.fitness, verdict.terms, best_baseline, list(earlier), requested,
                                      self.promotion)
            promote = bool(reason)
        detail = {**verdict.detail, "leak_check": leak_check}
        await self.store.append(
            events_pb2.ArchitectureJudged(arch_id=arch.arch_id, fitness=verdict.fitness, terms=verdict.terms,
                                          rationale=verdict.rationale, baseline_arch_id=baselines[0].arch_id,
                                          judge=judged_by, prompt=prompt, response=response,
                                          baseline_arch_ids=[b.arch_id for b in baselines],
                                          terms_json=json.dumps(detail, sort_keys=True), leak_check=leak_check,
                                          promote=promote),
            event_id=event_id_for("judged", arch.arch_id), causation_id=arch.last_event_id, **common)
        self.log.info("architecture.judged", run_id=arch.run_id, arch_id=arch.arch_id, fitness=verdict.fitness,
                      promote=promote)
        return verdict.fitness, promote

    async def _leak_check(self, arch: ArchitectureView, run: RunView, triggered: dict) -> str:
        """Run both checks, record the verdict with its evidence, and discard a leak."""
        data_dir = Path(self.settings.data_dir)
        checkpoint = data_dir / "checkpoints" / f"{arch.result.get('checkpoint', '')}.pt"
        causality = await asyncio.to_thread(leak.causality_recheck, arch.code, checkpoint, run.profile, run.corpus,
                                            data_dir)
        overlap = await asyncio.to_thread(leak.split_overlap, run.corpus, data_dir.resolve())
        verdict, reason = leak.verdict(causality, overlap)
        common = {"run_id": arch.run_id, "aggregate_id": arch.arch_id, "correlation_id": run.started_event_id}
        evidence = {"trigger": triggered, "causality": causality, "overlap": overlap}
        checked = await self.store.append(
            events_pb2.LeakChecked(arch_id=arch.arch_id, verdict=verdict, reason=reason,
                                   evidence_json=json.dumps(evidence, sort_keys=True)),
            event_id=event_id_for("leak-checked", arch.arch_id), causation_id=arch.last_event_id, **common)
        if verdict == "leak":
            change = triggered["relative_gain"]
            await self.store.append(
                events_pb2.ArchitectureDiscarded(
                    arch_id=arch.arch_id, failure_kind="leak",
                    reason=f"leak: validation loss {change:.1%} below {triggered['best_baseline']}'s, and {reason}"),
                event_id=event_id_for("discarded", arch.arch_id), causation_id=checked.event_id, **common)
        self.log.info("architecture.leak_checked", run_id=arch.run_id, arch_id=arch.arch_id, verdict=verdict)
        return verdict

    # -- promotion ---------------------------------------------------------------------------------

    async def _promotions(self, run: RunView, baselines: list[ArchitectureView]) -> None:
        for arch in self.projection.of_run(run.run_id):
            status = arch.promotion.get("status")
            if status == "pending":
                await self._request_promotion(arch, baselines, run,
                                              promotion.first_stage_seeds(arch.seed, self.promotion))
            elif status == "requested":
                await self._resubmit(arch, run)
                await self._decide(arch, baselines, run)

    def _job(self, arch: ArchitectureView, seed: int, run: RunView, job_id: str) -> jobs_pb2.TrainingJob:
        return jobs_pb2.TrainingJob(job_id=job_id, run_id=run.run_id, arch_id=arch.arch_id, code=arch.code,
                                    profile=run.promoted_at, seed=seed, correlation_id=run.started_event_id,
                                    corpus=run.corpus)

    async def _request_promotion(self, arch: ArchitectureView, baselines: list[ArchitectureView], run: RunView,
                                 seeds: list[int], screened: str = "") -> None:
        """Plan (and queue) the re-runs on ``seeds``; ``screened`` says why a screened candidate goes on."""
        plan: dict[str, dict[str, str]] = {}
        new: list[tuple[ArchitectureView, int, str]] = []
        for member in [arch, *baselines]:
            plan[member.arch_id] = {}
            for seed in seeds:
                if seed == member.seed and run.promoted_at == run.profile:  # its own training is this seed's result
                    job_id = member.job_id
                elif seed in member.replicates:  # already run for an earlier promotion
                    job_id = member.replicates[seed]["job_id"]
                else:
                    job_id = f"job-{member.arch_id}-seed{seed}"
                    new.append((member, seed, job_id))
                plan[member.arch_id][str(seed)] = job_id
        common = {"run_id": run.run_id, "correlation_id": run.started_event_id}
        chosen = next((t.detail for t in reversed(arch.trail) if t.type == "ArchitectureJudged"), "")
        reason = screened or f"top of the pool: {chosen[:200]}"
        requested = await self.store.append(
            events_pb2.PromotionRequested(arch_id=arch.arch_id, seeds=seeds,
                                          baseline_arch_ids=[b.arch_id for b in baselines],
                                          test=promotion.stated_test(self.promotion), reason=reason,
                                          jobs_json=json.dumps(plan, sort_keys=True)),
            aggregate_id=arch.arch_id,
            event_id=event_id_for("promotion-extended" if screened else "promotion-requested", arch.arch_id),
            causation_id=arch.last_event_id, **common)
        for member, seed, job_id in new:
            event = await self.store.append(
                events_pb2.TrainingRequested(arch_id=member.arch_id, job_id=job_id, profile=run.promoted_at, seed=seed,
                                             attempt=1, purpose="replicate", requested_by=requested.event_id),
                aggregate_id=member.arch_id, event_id=event_id_for("requested", job_id),
                causation_id=requested.event_id, **common)
            job = self._job(member, seed, run, job_id)
            job.causation_id = event.event_id
            await jobs.submit(self.store.js, job)
            self.submitted.add(job_id)
        self.log.info("promotion.requested", run_id=run.run_id, arch_id=arch.arch_id, seeds=seeds, jobs=len(new))

    async def _resubmit(self, arch: ArchitectureView, run: RunView) -> None:
        """Replicate jobs in the log that this process has not queued (a restart between the two
        writes); the queue's duplicate window makes a repeat harmless."""
        for arch_id, by_seed in arch.promotion["jobs"].items():
            member = self.projection.archs[arch_id]
            for seed, job_id in by_seed.items():
                entry = member.replicates.get(int(seed), {})
                if entry.get("job_id") == job_id and entry["status"] == "queued" and job_id not in self.submitted:
                    await jobs.submit(self.store.js, self._job(member, int(seed), run, job_id))
                    self.submitted.add(job_id)

    def _result_of(self, member: ArchitectureView, seed: int, job_id: str) -> tuple[str, dict]:
        """("trained" | "failed" | "waiting", the result or failure) of one planned run."""
        if job_id == member.job_id:
            return ("trained", member.result) if member.result else ("failed", member.failure)
        entry = member.replicates.get(seed)
        if entry is None or entry["job_id"] != job_id or entry["status"] in {"queued", "training"}:
            return "waiting", {}
        return entry["status"], entry.get("result") or entry.get("failure", {})

    async def _decide(self, arch: ArchitectureView, baselines: list[ArchitectureView], run: RunView) -> None:
        plan = arch.promotion["jobs"]
        per_seed: dict[str, dict[int, dict[str, float]]] = {}
        failures: list[str] = []
        for arch_id, by_seed in plan.items():
            member = self.projection.archs[arch_id]
            for seed, job_id in by_seed.items():
                state, value = self._result_of(member, int(seed), job_id)
                if state == "waiting":
                    return
                if state == "failed":
                    failures.append(f"{arch_id} seed {seed}: {value.get('kind', '?')}")
                    continue
                per_seed.setdefault(arch_id, {})[int(seed)] = {"val_loss": value["val_loss"],
                                                               "benchmark_mean": value["benchmark_mean"]}
        seeds = [int(s) for s in plan[arch.arch_id]]
        complete = [b for b in arch.promotion["baselines"] if len(per_seed.get(b, {})) == len(seeds)]
        if len(per_seed.get(arch.arch_id, {})) < len(seeds) or not complete:
            sota, statistics = False, {}
            decision = "not SOTA: replicate runs failed (" + "; ".join(failures) + "), so nothing can be tested"
        elif len(seeds) < self.promotion.seeds:  # the screen's one seed is in
            through, statistics, decision = promotion.screen(per_seed, arch.arch_id, complete)
            if through:
                await self._request_promotion(arch, [b for b in baselines if b.arch_id in complete], run,
                                              promotion.promotion_seeds(seeds[0], self.promotion), decision)
                return
            sota = False
        else:
            sota, statistics, decision = promotion.decide(per_seed, arch.arch_id, complete)
            if failures:
                decision += f" (baselines with failed replicates left out: {'; '.join(failures)})"
        fields = {"arch_id": arch.arch_id, "seeds": seeds, "test": promotion.stated_test(self.promotion),
                  "decision": decision,
                  "per_seed_json": json.dumps({a: {str(s): v for s, v in r.items()} for a, r in per_seed.items()},
                                              sort_keys=True),
                  "statistics_json": json.dumps(statistics, sort_keys=True)}
        event = events_pb2.ArchitecturePromoted(**fields) if sota else events_pb2.PromotionDenied(**fields)
        await self.store.append(event, run_id=run.run_id, aggregate_id=arch.arch_id,
                                event_id=event_id_for("promotion-decided", arch.arch_id),
                                causation_id=arch.last_event_id, correlation_id=run.started_event_id)
        self.log.info("promotion.decided", run_id=run.run_id, arch_id=arch.arch_id, sota=sota)


if __name__ == "__main__":
    main(JudgeService)
