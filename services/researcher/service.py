"""The researcher: keeps the experiment budget in flight. It proposes the seed baseline and
any ``--seed-arch`` architectures, then children of parents chosen by the run's selection
strategy (``selection.py``), retrieving literature and experience from cognition; gates
each by novelty, requests its training, discards failures (proposing a repair where one
applies) and ends the run when the budget is spent and all is analysed.

Every id it mints is derived from the log (run id and proposal count), so a restarted
researcher makes the same decisions instead of new ones.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import random
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from services.cognition.client import CognitionClient
from services.engineer.profiles import get_profile
from services.judge.baselines import gated_deltanet_proposal
from services.pb import events_pb2, jobs_pb2
from services.researcher import gates, genome
from services.researcher.experience import experience_statistics
from services.researcher.llm_mind import Context, Draft, LLMMind, MindFailure
from services.researcher.mind import OPERATORS, Candidate, EvolveMind, Proposal, Reference
from services.researcher.novelty import functional_fingerprint
from services.researcher.selection import DEFAULT_STRATEGY, PAPER_TOP, Member, Selection, select
from services.runtime import jobs, llm
from services.runtime.app import EventService, main
from services.runtime.envelope import event_id_for
from services.runtime.projection import ArchitectureView, RunView

MAX_REPAIRS = 2  # repairs of one lineage before a failure is final
MAX_REJECTIONS = 25  # novelty rejections in one run before the researcher stops proposing
# References per proposal, searched per kind: in one ranking the run's own analyses, which read
# like the query (the parent's analysis), outscore every paper, and the literature never reaches
# the mind (measured on the first discovery run: insert_cognition found a paper's tag in 3 of 66 proposals).
REFERENCES_PER_KIND = {"cognition": 4, "experience": 2}
LLM_ATTEMPTS = 3  # exchanges for one proposal before the LLM mind gives the iteration up
MAX_LLM_FAILURES = 12  # failed exchanges in one run before the LLM mind stops (mixed: evolve stands in)
LLM_TOKEN_BUDGET = 200_000  # per run, prompt + completion, when the run does not set one
LLM_TIMEOUT_S = 300.0  # one answer of ~1,000 tokens at ~14 tokens/s on one CPU thread, with slack
SIBLINGS, POOL_REFERENCES = 4, 3  # how much of the pool the LLM's prompt shows


def mind_mode(mind: str) -> str:
    """A run's mind setting ("evolve", "llm:<model>", "mixed:<model>") as the mode alone."""
    return mind.partition(":")[0] if mind.startswith(("llm:", "mixed:")) else "evolve"


def retry_id_for(arch_id: str, attempt: int) -> str:
    """The id of the ``attempt``-th revision of a rejected proposal, minted in the same reaction as
    it: from the rejected id, not from the proposal count, which the fold has not caught up with."""
    return "arch-" + hashlib.sha256(f"{arch_id}/retry/{attempt}".encode()).hexdigest()[:12]


def arch_id_for(run_id: str, n: int) -> str:
    return "arch-" + hashlib.sha256(f"{run_id}/{n}".encode()).hexdigest()[:12]


async def reference_hits(search: Callable[..., Awaitable[list[Any]]], query: str, run_id: str) -> list[Any]:
    """The references for one proposal: the best papers and the best of the run's own experience,
    each kind searched on its own (``REFERENCES_PER_KIND``), papers first."""
    return [hit for kind, k in REFERENCES_PER_KIND.items()
            for hit in await search(query, k=k, kinds=(kind,), run_id=run_id)]


class ResearcherService(EventService):
    name = "researcher"

    async def start(self) -> None:
        # The queue's consumer exists before the first job and before any engineer: an autoscaler
        # reads the pending count from it (deploy/k8s, KEDA), and at zero engineers none made it.
        if not await jobs.ensure_consumer(self.store.js, ack_wait_s=self.settings.job_ack_wait_s,
                                          max_deliver=self.settings.job_max_deliver):
            self.log.info("researcher.consumer_kept", reason="the jobs consumer exists already")
        self.cognition = CognitionClient(self.settings.cognition_addr)
        self.resubmitted: set[str] = set()
        self.exhausted: set[str] = set()  # runs whose every parent has run out of untried changes
        self.embeddings = gates.Embeddings()
        client = llm.from_settings(self.settings)
        if client is not None:
            client = llm.LLMClient(client.base_url, client.model, api_key=client.api_key,
                                   timeout_s=float(os.environ.get("ASI_LLM_TIMEOUT_S", LLM_TIMEOUT_S)))
        # ASI_LLM_ANSWER: edits (default) or methods, the answer format (llm_mind.py says why each).
        self.llm_mind = (LLMMind(client, answer_format=os.environ.get("ASI_LLM_ANSWER", "edits"))
                         if client is not None else None)
        # Spent in the current reaction, which the fold has not read back yet (reset at each reaction:
        # a service reacts only once caught up with the log).
        self.llm_spent: dict[str, int] = {}
        self.llm_failed_now: dict[str, int] = {}

    async def close(self) -> None:
        await self.cognition.close()

    async def react(self) -> None:
        self.llm_spent.clear()
        self.llm_failed_now.clear()
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
            await self._propose(run, in_flight=bool(in_flight))
            return
        promoting = self.projection.promotions_pending(run.run_id)  # their re-runs finish inside the run
        if not in_flight and not promoting and (len(experiments) >= run.experiments or not can_propose):
            reason = (
                "experiment budget spent"
                if len(experiments) >= run.experiments
                else ("no new proposal passed the novelty gate")
            )
            await self._finish(run, reason)

    async def _propose_seed_architecture(self, run: RunView) -> bool:
        """The next ``--seed-arch`` file not yet proposed, whatever the mind; False when none is left."""
        archs = self.projection.of_run(run.run_id)
        proposed_seeds = sum(a.operator == "seed" and not a.is_baseline for a in archs)
        if proposed_seeds >= len(run.seed_architectures):
            return False
        given = run.seed_architectures[proposed_seeds]
        await self._submit(
            run,
            EvolveMind(run.seed).seed_architecture(given["name"], given["code"]),
            parents=[],
            baseline=False,
            selection=f"seed architecture {proposed_seeds + 1} of {len(run.seed_architectures)} (--seed-arch)",
            arch_id=arch_id_for(run.run_id, len(archs)),
        )
        return True

    async def _propose_child(self, run: RunView) -> str | None:
        archs = self.projection.of_run(run.run_id)
        arch_id = arch_id_for(run.run_id, len(archs))
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
                key=self._draw_key(run, arch_id),
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

    def _draw_key(self, run: RunView, arch_id: str) -> str:
        """What the run's random draws for an architecture are keyed by: its place among the run's
        proposals, not its id, which is made from the run's random id. So two runs of one seed, or a
        resumed run and an uninterrupted one, draw alike."""
        place = {a.arch_id: n for n, a in enumerate(self.projection.of_run(run.run_id))}
        return f"proposal-{place.get(arch_id, len(place))}"

    def _select_parent(self, run: RunView, arch_id: str, *, genome_only: bool = True) -> Selection:
        """The parent (and crossover partners) under the run's strategy, from :func:`pool_members`."""
        archs = self.projection.of_run(run.run_id)
        members = pool_members(archs, self.projection.baseline(run.run_id), genome_only=genome_only)
        rng = random.Random(f"{run.seed}:{self._draw_key(run, arch_id)}:parent")
        return select(run.parent_strategy or DEFAULT_STRATEGY, members, rng, _turn(archs))

    async def _references(self, run: RunView, parent: ArchitectureView) -> list[Reference]:
        query = parent.analysis or (
            "improve associative recall and language-modeling loss of a delta-rule linear attention layer"
        )
        hits = await reference_hits(self.cognition.search, query, run.run_id)
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

    # -- the mind dispatch: --mind evolve | llm | mixed ------------------------------------------

    async def _propose(self, run: RunView, *, in_flight: bool) -> None:
        """One new proposal from the run's mind; under ``mixed`` the evolve mind stands in when the
        LLM fails or its budget is spent; under ``llm`` the run ends once the LLM can no longer propose."""
        if await self._propose_seed_architecture(run):
            return
        mode = mind_mode(run.mind)
        if mode == "evolve":
            await self._propose_child(run)
            return
        reason = self._llm_unavailable(run)
        if reason is None:
            if await self._propose_llm(run):
                return
            reason = self._llm_unavailable(run) or "the LLM produced no usable proposal this iteration"
        self.log.info("researcher.llm_stood_down", run_id=run.run_id, mode=mode, reason=reason)
        if mode == "mixed":
            try:
                await self._propose_child(run)
            except ValueError as exc:
                # The evolve mind derives children from genome-rendered parents only; when the drawn
                # parent is LLM-written it cannot stand in, and the run stops proposing (bounded).
                self.log.info("researcher.evolve_cannot_stand_in", run_id=run.run_id, reason=str(exc))
                self.exhausted.add(run.run_id)
        elif not in_flight and self._llm_unavailable(run) is not None:
            await self._finish(run, f"the LLM mind stopped: {reason}")

    def _llm_unavailable(self, run: RunView) -> str | None:
        budget = run.llm_token_budget or LLM_TOKEN_BUDGET
        spent = run.llm_tokens + self.llm_spent.get(run.run_id, 0)
        if self.llm_mind is None:
            return "no LLM is configured (ASI_LLM_URL is empty)"
        if spent >= budget:
            return f"its token budget is spent ({spent} of {budget} tokens)"
        failures = run.llm_failures + self.llm_failed_now.get(run.run_id, 0)
        if failures >= MAX_LLM_FAILURES:
            return f"{failures} exchanges failed in this run"
        return None

    def _context(self, run: RunView, parent: ArchitectureView, references: list[Reference]) -> Context:
        archs = self.projection.of_run(run.run_id)
        siblings = [a for a in archs if parent.arch_id in a.parents][-SIBLINGS:]
        board = [a for a in self.projection.leaderboard(run.run_id) if a.arch_id != parent.arch_id]
        others = board[PAPER_TOP // 2:][:POOL_REFERENCES] or board[-POOL_REFERENCES:]
        # A design with a genome is shown as the genome renders it: the parent's idiom, so its diff
        # against the parent holds only what differs (the baseline files are written by hand).
        return Context(parent, self.projection.baseline(run.run_id), references, siblings,
                       [replace(a, code=genome.render(genome.components_of(a.code), a.name, a.motivation))
                        if _readable_code(a.code) else a for a in others])

    async def _propose_llm(self, run: RunView) -> bool:
        """Ask the LLM mind for a child of a selected parent, with bounded retries; False if no
        exchange produced code (each failure is an ``LLMExchangeFailed`` event)."""
        assert self.llm_mind is not None
        arch_id = arch_id_for(run.run_id, len(self.projection.of_run(run.run_id)))
        chosen = self._select_parent(run, arch_id, genome_only=False)
        parent = self.projection.archs[chosen.parent]
        references = await self._references(run, parent)
        context = self._context(run, parent, references)
        for attempt in range(1, LLM_ATTEMPTS + 1):
            if self._llm_unavailable(run) is not None:
                return False
            try:
                draft = await self.llm_mind.propose(context, attempt=attempt)
            except MindFailure as failure:
                await self._llm_failed(run, arch_id, "propose", failure, last=attempt == LLM_ATTEMPTS)
                continue
            self._spend(run, draft)
            await self._submit(run, draft.proposal, parents=[parent.arch_id], baseline=False, selection=chosen.text,
                               arch_id=arch_id, references=references, chosen=chosen, draft=draft, context=context)
            return True
        return False

    def _spend(self, run: RunView, draft: Draft | MindFailure) -> None:
        self.llm_spent[run.run_id] = self.llm_spent.get(run.run_id, 0) + draft.exchange.tokens

    async def _llm_failed(self, run: RunView, arch_id: str, purpose: str, failure: MindFailure, *,
                          last: bool) -> None:
        """Record an exchange that produced no code; its index in the run keeps the event id unique."""
        assert self.llm_mind is not None
        self._spend(run, failure)
        index = run.llm_failures + self.llm_failed_now.get(run.run_id, 0) + 1
        self.llm_failed_now[run.run_id] = self.llm_failed_now.get(run.run_id, 0) + 1
        mode = mind_mode(run.mind)
        fallback = "retry" if not last else ("evolve" if mode == "mixed" and purpose == "propose" else "gave up")
        x = failure.exchange
        await self.store.append(
            events_pb2.LLMExchangeFailed(
                arch_id=arch_id, purpose=purpose, attempt=index, model=self.llm_mind.label, kind=failure.kind,
                message=str(failure)[:2000], prompt=x.prompt, response=x.response,
                prompt_tokens=x.prompt_tokens, completion_tokens=x.completion_tokens, seconds=x.seconds,
                fallback=fallback),
            run_id=run.run_id, aggregate_id=run.run_id, correlation_id=run.started_event_id,
            event_id=event_id_for("llm-failed", run.run_id, str(index)))
        self.log.info("researcher.llm_failed", run_id=run.run_id, arch_id=arch_id, kind=failure.kind,
                      message=str(failure)[:200], fallback=fallback)

    # -- the gates ----------------------------------------------------------------------------

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
        repair_of_failure: str = "",
        draft: Draft | None = None,
        context: Context | None = None,
    ) -> str | None:
        """Propose, gate (novelty by embedding, validity by the probes, novelty by fingerprint) and
        request training; the proposal's event id, or None if a gate rejected it. A rejected proposal
        goes back to the mind that wrote it (``_revise``), a bounded number of times."""
        arch_id = arch_id or arch_id_for(run.run_id, len(self.projection.of_run(run.run_id)))
        verdict: gates.Verdict | None = None
        nearest = gates.Nearest()
        if baseline:  # the papers' design, rendered here: trusted, and never gated
            fingerprint = functional_fingerprint(proposal.code)
        else:
            settings = gates.GateSettings.of_run(run)
            earlier = gates.comparable(self.projection.of_run(run.run_id), arch_id)
            verdict, nearest = gates.embedding_novelty(proposal.motivation, proposal.code, earlier, settings,
                                                       self.embeddings)
            fingerprint = ""
            if verdict is None:
                verdict, fingerprint = await gates.validity(proposal.code, run.profile)
            if verdict is None:
                verdict = gates.fingerprint_novelty(fingerprint, earlier)
        by_ref = {r.id: r for r in references}
        exchange = draft.exchange if draft else None
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
            mind=self.llm_mind.label if draft and self.llm_mind else "evolve",
            prompt=exchange.prompt if exchange else "",
            response=exchange.response if exchange else "",
            fingerprint=fingerprint,
            is_baseline=baseline,
            repair_of_attempt=repair_of_attempt,
            operator=proposal.operator,
            parent_strategy=chosen.strategy if chosen else "",
            selection_json=json.dumps(chosen.numbers, sort_keys=True) if chosen else "",
            llm_prompt_tokens=exchange.prompt_tokens if exchange else 0,
            llm_completion_tokens=exchange.completion_tokens if exchange else 0,
            llm_seconds=exchange.seconds if exchange else 0.0,
            repair_of_failure=repair_of_failure,
            llm_fixes="; ".join(draft.fixes) if draft else "",
            origin_check=draft.origin_check if draft else "",
            nearest_motivation_id=nearest.motivation_id,
            motivation_similarity=nearest.motivation_similarity,
            nearest_code_id=nearest.code_id,
            code_similarity=nearest.code_similarity,
        )
        common = {"run_id": run.run_id, "aggregate_id": arch_id, "correlation_id": run.started_event_id}
        env = await self.store.append(proposed, event_id=event_id_for("proposed", arch_id), **common)
        self.log.info(
            "architecture.proposed", run_id=run.run_id, arch_id=arch_id, name=proposal.name, origin=proposal.origin
        )
        if verdict is not None:
            await self.store.append(
                events_pb2.ProposalRejected(
                    arch_id=arch_id, gate=verdict.gate, similar_to=verdict.similar_to, reason=verdict.reason,
                    similarity=verdict.similarity, failure_kind=verdict.failure_kind,
                    traceback=verdict.traceback, checks_json=verdict.checks_json,
                ),
                event_id=event_id_for("rejected", arch_id),
                causation_id=env.event_id,
                **common,
            )
            self.log.info("proposal.rejected", run_id=run.run_id, arch_id=arch_id, gate=verdict.gate,
                          reason=verdict.reason[:200])
            await self._revise(run, arch_id, proposal, verdict, attempt=repair_of_attempt, draft=draft,
                               references=list(references), context=context, selection=selection)
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

    # -- the repair loop ------------------------------------------------------------------------

    async def _revise(self, run: RunView, arch_id: str, proposal: Proposal, verdict: gates.Verdict, *,
                      attempt: int, draft: Draft | None, references: list[Reference], context: Context | None,
                      selection: str) -> None:
        """Send a rejected proposal back to the mind that wrote it: after a validity failure for a
        repair (at most the run's ``repairs``), after a novelty rejection for another idea from the
        same parent (at most ``idea_retries``, LLM mind only: the evolve mind's next proposal already
        avoids every design tried). Each revision is its own proposal, gated like the first."""
        settings = gates.GateSettings.of_run(run)
        limit = settings.repairs if verdict.gate == "validity" else settings.idea_retries
        if attempt >= limit:
            return
        next_id = retry_id_for(arch_id, attempt + 1)
        failure = {"kind": verdict.failure_kind or verdict.gate, "message": verdict.message or verdict.reason,
                   "traceback": verdict.traceback}
        if draft is None:  # the evolve mind: its fixed repairs for the engineer's failure kinds
            if verdict.gate != "validity":
                return
            repair = EvolveMind(run.seed).repair(Candidate(arch_id, proposal.name, proposal.code, 0.0),
                                                 failure["kind"], failure["message"],
                                                 key=self._draw_key(run, arch_id))
            if repair is not None:
                await self._submit(run, repair, parents=[arch_id], baseline=False,
                                   selection=f"repair of {arch_id} after {failure['kind']}", arch_id=next_id,
                                   repair_of_attempt=attempt + 1, repair_of_failure=failure["kind"])
            return
        if self._llm_unavailable(run) is not None or (verdict.gate != "validity" and context is None):
            return
        assert self.llm_mind is not None
        try:
            if verdict.gate == "validity":
                revised = await self.llm_mind.repair(arch_id, proposal, failure, attempt=attempt + 1,
                                                     context=context)
            else:
                assert context is not None
                revised = await self.llm_mind.propose(replace(context, avoid=verdict.reason), attempt=attempt + 1)
        except MindFailure as exc:
            await self._llm_failed(run, next_id, "repair" if verdict.gate == "validity" else "propose", exc,
                                   last=True)
            return
        self._spend(run, revised)
        if verdict.gate == "validity":
            parents, why = [arch_id], f"LLM repair of {arch_id} after {failure['kind']}"
        else:
            assert context is not None
            parents, why = [context.parent.arch_id], f"{selection}; another idea after {arch_id} was a duplicate"
        await self._submit(run, revised.proposal, parents=parents, baseline=False, selection=why, arch_id=next_id,
                           references=references, repair_of_attempt=attempt + 1,
                           repair_of_failure=failure["kind"], draft=revised, context=context)

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
        """Discard a proposal whose training failed and send the failure back to the mind that wrote it."""
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
        if arch.is_baseline or arch.repair_of_attempt >= gates.GateSettings.of_run(run).repairs:
            return
        if len(self.projection.experiments(run.run_id)) >= run.experiments:
            return
        failure = {**arch.failure, "traceback": ""}
        selection = f"repair of {arch.arch_id} after {arch.failure['kind']}"
        if arch.mind.startswith("llm:"):
            if self._llm_unavailable(run) is not None:
                return
            assert self.llm_mind is not None
            written = Proposal(arch.name, arch.motivation, arch.code, arch.components, arch.origin,
                               tuple(c["entry_id"] for c in arch.citations), arch.mutation)
            repair_id = arch_id_for(run.run_id, len(self.projection.of_run(run.run_id)))
            try:
                draft = await self.llm_mind.repair(arch.arch_id, written, failure,
                                                   attempt=arch.repair_of_attempt + 1)
            except MindFailure as exc:
                await self._llm_failed(run, repair_id, "repair", exc, last=True)
                return
            self._spend(run, draft)
            await self._submit(run, draft.proposal, parents=[arch.arch_id], baseline=False, selection=selection,
                               arch_id=repair_id, repair_of_attempt=arch.repair_of_attempt + 1,
                               repair_of_failure=arch.failure["kind"], draft=draft)
            return
        repair = EvolveMind(run.seed).repair(
            Candidate(arch.arch_id, arch.name, arch.code, 0.0),
            arch.failure["kind"],
            arch.failure["message"],
            key=self._draw_key(run, arch.arch_id),
        )
        if repair is not None:
            await self._submit(
                run,
                repair,
                parents=[arch.arch_id],
                baseline=False,
                selection=selection,
                repair_of_attempt=arch.repair_of_attempt + 1,
                repair_of_failure=arch.failure["kind"],
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


def pool_members(archs: list[ArchitectureView], root: ArchitectureView | None, *, genome_only: bool) -> list[Member]:
    """The run's pool of parents, in the run's order of proposal: both baselines from the start, at
    the judge's 0.5 until scored, and every scored design (for the evolve mind, ``genome_only``: those
    it can read as a genome; the LLM mind reads any code).

    The cold start draws from the root (the seed baseline) and the ``--seed-arch`` files, and counts
    only the run's own experiments; Gated DeltaNet then competes like a candidate. Both are in the
    pool whatever has been scored, so which parents exist never depends on which training finished
    first. Gated DeltaNet is a parent because its forgetting gate carries the lowest validation loss
    of the baselines: with the seed as the only root, the first discovery run tried a decay in 2 of
    64 experiments and never the output gate."""
    children: dict[str, int] = {}
    for arch in archs:
        for parent in arch.parents:
            children[parent] = children.get(parent, 0) + 1
    return [
        Member(
            a.arch_id,
            a.fitness if a.fitness is not None else 0.5,
            children.get(a.arch_id, 0),
            island=a.selection.get("island") if a.origin != "seed" else None,
            seed=a is root or (a.origin == "seed" and not a.is_baseline),
            baseline=a.is_baseline,
            terms=(a.terms["loss"], a.terms["benchmark"]) if {"loss", "benchmark"} <= a.terms.keys() else None,
        )
        for a in archs
        if ((a.is_baseline and not a.failure) or (a.status == "analyzed" and a.fitness is not None))
        and (not genome_only or _readable_code(a.code))
    ]


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
