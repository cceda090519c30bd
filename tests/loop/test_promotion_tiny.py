"""Promotion for real on `tiny`: both baselines and a candidate trained by a real engineer, the
judge re-training the candidate and both baselines on two more seeds, and a decision with its
test in the log. The test plays the researcher (the proposals and their first training jobs)
with a top-1 promotion config that promotes the first candidate whatever its fitness, and without
the first-seed screen (tests/loop/test_judge_decisions.py plants both of its outcomes)."""

from __future__ import annotations

import hashlib
import json

import pytest

from services.judge.baselines import gated_deltanet_proposal
from services.pb import events_pb2, jobs_pb2
from services.researcher import genome
from services.researcher.mind import EvolveMind, Proposal
from services.runtime import envelope, jobs
from services.runtime.eventstore import EventStore
from tests.loop.conftest import Services, of_type, wait_for

pytestmark = pytest.mark.slow
RUN = "run-p"


async def propose_and_train(store: EventStore, arch: str, proposal: Proposal, *, baseline: bool, parent: str = "",
                            correlation: str) -> None:
    common = {"run_id": RUN, "aggregate_id": arch, "correlation_id": correlation}
    await store.append(events_pb2.ArchitectureProposed(
        arch_id=arch, name=proposal.name, parent_ids=[parent] if parent else [], code=proposal.code,
        code_hash=hashlib.sha256(proposal.code.encode()).hexdigest(), components=proposal.components,
        origin=proposal.origin, is_baseline=baseline, fingerprint=f"fp-{arch}"), **common)
    requested = await store.append(events_pb2.TrainingRequested(arch_id=arch, job_id=f"job-{arch}", profile="tiny",
                                                                seed=0, attempt=1), **common)
    await jobs.submit(store.js, jobs_pb2.TrainingJob(job_id=f"job-{arch}", run_id=RUN, arch_id=arch, code=proposal.code,
                                                     profile="tiny", seed=0, correlation_id=correlation,
                                                     causation_id=requested.event_id))


async def train_both_baselines_and_a_child_until_decided(store: EventStore, correlation: str) -> list:
    """Both baselines (b1, b2) and a child of b1 (c1) proposed and trained; the log once the judge
    has decided c1's promotion."""
    seed = EvolveMind(0).seed_proposal()
    await propose_and_train(store, "b1", seed, baseline=True, correlation=correlation)
    await propose_and_train(store, "b2", gated_deltanet_proposal(), baseline=True, correlation=correlation)
    components = genome.make_valid({**seed.components, "decay": "scalar"}, keep="decay")
    child = Proposal(name=genome.name_of(components), motivation="a scalar decay on the seed",
                     code=genome.render(components, genome.name_of(components), "a scalar decay on the seed"),
                     components=components, origin="original", citations=(), mutation="decay: none -> scalar")
    await propose_and_train(store, "c1", child, baseline=False, parent="b1", correlation=correlation)
    return await wait_for(store, lambda rs: of_type(rs, "ArchitecturePromoted") or of_type(rs, "PromotionDenied"),
                          1500, "a promotion decision")


async def test_a_candidate_is_re_trained_on_three_seeds_beside_both_baselines_and_decided(
        store: EventStore, services: Services) -> None:
    services.start("engineer", ASI_WORKER_ID="engineer-1")
    services.start("judge", ASI_PROMOTE_TOP_K="1", ASI_PROMOTE_SEEDS="3", ASI_PROMOTE_ABOVE_BASELINES="0",
                    ASI_PROMOTE_SCREEN="0")
    run = await store.append(events_pb2.RunStarted(profile="tiny", experiments=1), run_id=RUN, aggregate_id=RUN)
    records = await train_both_baselines_and_a_child_until_decided(store, run.event_id)
    finished = [envelope.unpack(r.env) for r in of_type(records, "TrainingFinished")]
    assert sorted(f.job_id for f in finished) == sorted(
        [f"job-{a}" for a in ("b1", "b2", "c1")] + [f"job-{a}-seed{s}" for a in ("b1", "b2", "c1") for s in (1, 2)])
    decision = envelope.unpack((of_type(records, "ArchitecturePromoted") or of_type(records, "PromotionDenied"))[0].env)
    per_seed = json.loads(decision.per_seed_json)
    assert decision.arch_id == "c1" and list(decision.seeds) == [0, 1, 2] and "paired t-test" in decision.test
    assert set(per_seed) == {"b1", "b2", "c1"} and all(set(rows) == {"0", "1", "2"} for rows in per_seed.values())
    assert len(json.loads(decision.statistics_json)) == 4  # two baselines x two metrics
    # The seeds differ: a replicate is a new training, not a copy of the first.
    assert len({rows["val_loss"] for rows in per_seed["c1"].values()}) == 3


async def test_a_promotion_profile_re_trains_every_seed_at_that_profile(store: EventStore, services: Services) -> None:
    """A run that explores at one profile and promotes at another: the first trainings are at the
    exploration profile, so none of them can stand in for a seed of the re-runs. (The run says it
    explores at `explore` and the test trains its first jobs at `tiny`, the only profile fast enough
    here; the judge reads only the run's two names.)"""
    services.start("engineer", ASI_WORKER_ID="engineer-1")
    services.start("judge", ASI_PROMOTE_TOP_K="1", ASI_PROMOTE_SEEDS="2", ASI_PROMOTE_ABOVE_BASELINES="0",
                    ASI_PROMOTE_SCREEN="0")
    run = await store.append(events_pb2.RunStarted(profile="explore", promotion_profile="tiny", experiments=1),
                             run_id=RUN, aggregate_id=RUN)
    records = await train_both_baselines_and_a_child_until_decided(store, run.event_id)
    replicates = [envelope.unpack(r.env) for r in of_type(records, "TrainingRequested")]
    replicates = [r for r in replicates if r.purpose == "replicate"]
    expected = [f"job-{a}-seed{s}" for a in ("b1", "b2", "c1") for s in (0, 1)]
    assert sorted(r.job_id for r in replicates) == sorted(expected)
    assert {r.profile for r in replicates} == {"tiny"}
    requested = envelope.unpack(of_type(records, "PromotionRequested")[0].env)
    assert json.loads(requested.jobs_json)["c1"] == {"0": "job-c1-seed0", "1": "job-c1-seed1"}
    decision = envelope.unpack((of_type(records, "ArchitecturePromoted") or of_type(records, "PromotionDenied"))[0].env)
    plan = json.loads(decision.per_seed_json)
    assert set(plan) == {"b1", "b2", "c1"} and all(set(rows) == {"0", "1"} for rows in plan.values())
