"""The researcher: keeps the experiment budget in flight. It proposes the seed baseline and
any ``--seed-arch`` architectures, then children of parents chosen by the run's selection
strategy (``selection.py``), retrieving literature and experience from cognition; gates
each by novelty, requests its training, discards failures (proposing a repair where one
applies) and ends the run when the budget is spent and all is analysed.

Every id it mints is derived from the log (run id and proposal count), so a restarted
researcher makes the same decisions instead of new ones.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import random

from services.cognition.client import CognitionClient
from services.engineer.profiles import get_profile
from services.judge.baselines import gated_deltanet_proposal
from services.pb import events_pb2, jobs_pb2
from services.researcher import genome
from services.researcher.experience import experience_statistics
from services.researcher.mind import OPERATORS, Candidate, EvolveMind, Proposal, Reference
from services.researcher.novelty import functional_fingerprint
from services.researcher.selection import DEFAULT_STRATEGY, Member, Selection, select
from services.runtime import jobs
from services.runtime.app import EventService, main
from services.runtime.envelope import event_id_for
from services.runtime.projection import ArchitectureView, RunView

MAX_REPAIRS = 2  # repairs of one lineage before a failure is final
MAX_REJECTIONS = 25  # novelty rejections in one run before the researcher stops proposing
REFERENCES_K = 6


def arch_id_for(run_id: str, n: int) -> str:
    return "arch-" + hashlib.sha256(f"{run_id}/{n}".encode()).hexdigest()[:12]


class ResearcherService(EventService):
    name = "researcher"

    async def start(self) -> None:
        self.cognition = CognitionClient(self.settings.cognition_addr)
        self.resubmitted: set[str] = set()
        self.exhausted: set[str] = set()  # runs whose every parent has run out of untried changes

    async def close(self) -> None:
        await self.cognition.close()

    async def react(self) -> None:
        for run in list(self.projection.runs.values()):
            if not run.finished:
                await self._advance(run)

    async def _advance(self, run: RunView) -> None:
        """One decision per reaction: each minted id counts the proposals already in the log,
        so the next decision waits until the fold has read this one back."""
        archs = self.projection.of_run(run.run_id)
        baseline = self.projection.baseline(run.run_id)
        if baseline is None:
            await self._submit(
                run,
                EvolveMind(run.seed).seed_proposal(),
                parents=[],
                baseline=True,
                selection="the seed baseline of the run",
            )
            return
        if len(self.projection.baselines(run.run_id)) < 2:  # the second baseline, before any child
            await self._submit(run, gated_deltanet_proposal(), parents=[], baseline=True,
                               selection="the run's second baseline")
            return
        if baseline.failure:
            await self._finish(
                run, f"the baseline failed ({baseline.failure['kind']}): {baseline.failure['message'][:200]}"
            )
            return
        await self._resubmit_queued(run, archs)
        failed = next((a for a in archs if a.status == "failed"), None)
        if failed is not None:
            await self._discard_and_repair(run, failed)
            return
        experiments = self.projection.experiments(run.run_id)
        in_flight = [a for a in archs if not a.terminal]
        rejected = sum(a.status == "rejected" for a in archs)
        can_propose = rejected < MAX_REJECTIONS and run.run_id not in self.exhausted
        if len(experiments) < run.experiments and len(in_flight) < max(1, run.engineers) and can_propose:
            await self._propose_child(run)
            return
        promoting = self.projection.promotions_pending(run.run_id)  # their re-runs finish inside the run
        if not in_flight and not promoting and (len(experiments) >= run.experiments or not can_propose):
            reason = (
                "experiment budget spent"
                if len(experiments) >= run.experiments
                else ("no new proposal passed the novelty gate")
            )
            await self._finish(run, reason)

    async def _propose_child(self, run: RunView) -> str | None:
        archs = self.projection.of_run(run.run_id)
        arch_id = arch_id_for(run.run_id, len(archs))
        proposed_seeds = sum(a.operator == "seed" and not a.is_baseline for a in archs)
        if proposed_seeds < len(run.seed_architectures):
            given = run.seed_architectures[proposed_seeds]
            return await self._submit(
                run,
                EvolveMind(run.seed).seed_architecture(given["name"], given["code"]),
                parents=[],
                baseline=False,
                selection=f"seed architecture {proposed_seeds + 1} of {len(run.seed_architectures)} (--seed-arch)",
                arch_id=arch_id,
            )
        profile = get_profile(run.profile)
        mind = EvolveMind(run.seed, budget=(profile.d_model, profile.n_heads))
        chosen = self._select_parent(run, arch_id)
        parents = [self.projection.archs[arch] for arch in (chosen.parent, *chosen.partners)]
        references = await self._references(run, parents[0])
        try:
            proposal = mind.propose(
                [Candidate(p.arch_id, p.name, p.code, p.fitness or 0.5) for p in parents],
                references,
                experience_statistics(self.projection, run.run_id),
                key=arch_id,
                turn=_turn(archs),
                avoid={signature for a in archs if (signature := _signature(a.components))},
            )
        except RuntimeError as exc:
            self.log.info("researcher.parent_exhausted", run_id=run.run_id, parent=chosen.parent, reason=str(exc))
            self.exhausted.add(run.run_id)
            return None
        return await self._submit(
            run,
            proposal,
            parents=list(proposal.parent_ids),
            baseline=False,
            selection=chosen.text,
            arch_id=arch_id,
            references=references,
            chosen=chosen,
        )

    def _select_parent(self, run: RunView, arch_id: str) -> Selection:
        """The parent (and crossover partners) under the run's strategy, from the scored designs the
        evolve mind can read; the seed counts from the start, at the judge's 0.5 until scored. The
        second baseline (Gated DeltaNet) is a yardstick, never a parent: the search descends from the seed."""
        archs = self.projection.of_run(run.run_id)
        seed = self.projection.baseline(run.run_id)
        children: dict[str, int] = {}
        for arch in archs:
            for parent in arch.parents:
                children[parent] = children.get(parent, 0) + 1
        members = [
            Member(
                a.arch_id,
                a.fitness if a.fitness is not None else 0.5,
                children.get(a.arch_id, 0),
                island=a.selection.get("island") if a.origin != "seed" else None,
                seed=a.origin == "seed",
            )
            for a in archs
            if (a is seed or (not a.is_baseline and a.status == "analyzed" and a.fitness is not None))
            and _readable_code(a.code)
        ]
        rng = random.Random(f"{run.seed}:{arch_id}:parent")
        return select(run.parent_strategy or DEFAULT_STRATEGY, members, rng, _turn(archs))

    async def _references(self, run: RunView, parent: ArchitectureView) -> list[Reference]:
        query = parent.analysis or (
            "improve associative recall and language-modeling loss of a delta-rule linear attention layer"
        )
        hits = await self.cognition.search(query, k=REFERENCES_K, run_id=run.run_id)
        archs = self.projection.archs
        return [
            Reference(
                id=h.id,
                kind=h.kind,
                tags=tuple(h.tags),
                text=h.text or h.title,
                score=h.score,
                outcome=archs[h.paper].outcome if h.kind == "experience" and h.paper in archs else "",
            )
            for h in hits
        ]

    async def _submit(
        self,
        run: RunView,
        proposal: Proposal,
        *,
        parents: list[str],
        baseline: bool,
        selection: str,
        arch_id: str | None = None,
        references: list[Reference] = (),
        repair_of_attempt: int = 0,
        chosen: Selection | None = None,
    ) -> str | None:
        """Propose, gate by novelty, and request training; the proposal's event id, or None if rejected."""
        arch_id = arch_id or arch_id_for(run.run_id, len(self.projection.of_run(run.run_id)))
        fingerprint = await asyncio.to_thread(functional_fingerprint, proposal.code)
        by_ref = {r.id: r for r in references}
        proposed = events_pb2.ArchitectureProposed(
            arch_id=arch_id,
            name=proposal.name,
            parent_ids=parents,
            motivation=proposal.motivation,
            code=proposal.code,
            code_hash=hashlib.sha256(proposal.code.encode()).hexdigest(),
            components=proposal.components,
            origin=proposal.origin,
            citations=[
                events_pb2.Citation(
                    entry_id=c,
                    kind=by_ref[c].kind if c in by_ref else "",
                    score=by_ref[c].score if c in by_ref else 0.0,
                )
                for c in proposal.citations
            ],
            mutation=proposal.mutation,
            parent_selection=selection,
            mind="evolve",
            fingerprint=fingerprint,
            is_baseline=baseline,
            repair_of_attempt=repair_of_attempt,
            operator=proposal.operator,
            parent_strategy=chosen.strategy if chosen else "",
            selection_json=json.dumps(chosen.numbers, sort_keys=True) if chosen else "",
        )
        common = {"run_id": run.run_id, "aggregate_id": arch_id, "correlation_id": run.started_event_id}
        env = await self.store.append(proposed, event_id=event_id_for("proposed", arch_id), **common)
        self.log.info(
            "architecture.proposed", run_id=run.run_id, arch_id=arch_id, name=proposal.name, origin=proposal.origin
        )
        twin = next(
            (a for a in self.projection.of_run(run.run_id) if a.fingerprint == fingerprint and a.arch_id != arch_id),
            None,
        )
        if twin is not None:
            await self.store.append(
                events_pb2.ProposalRejected(
                    arch_id=arch_id,
                    gate="novelty",
                    similar_to=twin.arch_id,
                    reason=f"computes the same function as {twin.arch_id} ({twin.name}) on the probe batch",
                ),
                event_id=event_id_for("rejected", arch_id),
                causation_id=env.event_id,
                **common,
            )
            return None
        job = jobs_pb2.TrainingJob(
            job_id=f"job-{arch_id}",
            run_id=run.run_id,
            arch_id=arch_id,
            code=proposal.code,
            profile=run.profile,
            seed=run.seed,
            correlation_id=run.started_event_id,
            corpus=run.corpus,
        )
        requested = await self.store.append(
            events_pb2.TrainingRequested(
                arch_id=arch_id, job_id=job.job_id, profile=run.profile, seed=run.seed, attempt=1
            ),
            event_id=event_id_for("requested", arch_id),
            causation_id=env.event_id,
            **common,
        )
        job.causation_id = requested.event_id
        await jobs.submit(self.store.js, job)
        self.resubmitted.add(job.job_id)
        return env.event_id

    async def _resubmit_queued(self, run: RunView, archs: list[ArchitectureView]) -> None:
        """Jobs whose request is in the log but may have missed the queue (a crash between
        the two writes). Re-submitting is idempotent within the queue's duplicate window."""
        for arch in archs:
            if arch.status == "queued" and arch.job_id not in self.resubmitted:
                job = jobs_pb2.TrainingJob(
                    job_id=arch.job_id,
                    run_id=run.run_id,
                    arch_id=arch.arch_id,
                    code=arch.code,
                    profile=run.profile,
                    seed=run.seed,
                    correlation_id=run.started_event_id,
                    causation_id=arch.last_event_id,
                    corpus=run.corpus,
                )
                await jobs.submit(self.store.js, job)
                self.resubmitted.add(arch.job_id)

    async def _discard_and_repair(self, run: RunView, arch: ArchitectureView) -> None:
        common = {"run_id": run.run_id, "aggregate_id": arch.arch_id, "correlation_id": run.started_event_id}
        await self.store.append(
            events_pb2.ArchitectureDiscarded(
                arch_id=arch.arch_id,
                failure_kind=arch.failure["kind"],
                reason=f"training failed ({arch.failure['kind']})",
            ),
            event_id=event_id_for("discarded", arch.arch_id),
            causation_id=arch.last_event_id,
            **common,
        )
        if arch.is_baseline or arch.repair_of_attempt >= MAX_REPAIRS:
            return
        if len(self.projection.experiments(run.run_id)) >= run.experiments:
            return
        repair = EvolveMind(run.seed).repair(
            Candidate(arch.arch_id, arch.name, arch.code, 0.0),
            arch.failure["kind"],
            arch.failure["message"],
            key=arch.arch_id,
        )
        if repair is not None:
            await self._submit(
                run,
                repair,
                parents=[arch.arch_id],
                baseline=False,
                selection=f"repair of {arch.arch_id} after {arch.failure['kind']}",
                repair_of_attempt=arch.repair_of_attempt + 1,
            )

    async def _finish(self, run: RunView, reason: str) -> None:
        board = [a for a in self.projection.leaderboard(run.run_id) if not a.is_baseline]
        best = board[0] if board else None
        await self.store.append(
            events_pb2.RunFinished(
                experiments=len(self.projection.experiments(run.run_id)),
                best_arch_id=best.arch_id if best else "",
                best_fitness=best.fitness or 0.0 if best else 0.0,
                reason=reason,
            ),
            run_id=run.run_id,
            aggregate_id=run.run_id,
            event_id=event_id_for("finished", run.run_id),
            correlation_id=run.started_event_id,
        )
        self.log.info("run.finished", run_id=run.run_id, reason=reason)


def _turn(archs: list[ArchitectureView]) -> int:
    """How many children the evolve mind's operators have proposed in the run: whose turn is next."""
    return sum(a.operator in OPERATORS for a in archs)


def _signature(components: dict[str, str]) -> str:
    """The design's signature; empty for no genome (a seed file the evolve mind cannot read) or
    one the vocabulary no longer holds (a log written by an older genome: axes it lacks are defaults)."""
    if not components or genome.problems(full := {**genome.DEFAULTS, **components}):
        return ""
    return genome.signature(full)


@functools.lru_cache(maxsize=1024)
def _readable_code(code: str) -> bool:
    """Whether the evolve mind can read ``code`` as a genome (a rendered file or a baseline file)."""
    try:
        genome.components_of(code)
    except ValueError:
        return False
    return True


if __name__ == "__main__":
    main(ResearcherService)
