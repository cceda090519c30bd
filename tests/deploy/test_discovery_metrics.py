"""The dashboard's discovery metrics say what the log says: the analyst's gauges are set from the
fold of a real log (appended to a real nats-server), and the LLM counters count one answer."""

from __future__ import annotations

from prometheus_client import REGISTRY

from services.pb import events_pb2
from services.runtime import metrics
from services.runtime.eventstore import EventStore
from services.runtime.llm import Exchange
from services.runtime.projection import Projection

RUN = "run-metrics"


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def a_run_with_one_sota(store: EventStore) -> Projection:
    """A baseline, a candidate trained (40 s), re-run (20 s) and promoted, and a rejected proposal."""
    await store.append(events_pb2.RunStarted(profile="tiny", experiments=2), run_id=RUN, aggregate_id=RUN)
    proposals = (("base", True, "evolve", "seed"), ("cand", False, "evolve", "cognition"),
                 ("dup", False, "llm:qwen", "original"))
    for arch, baseline, mind, origin in proposals:
        await store.append(events_pb2.ArchitectureProposed(arch_id=arch, name=arch, is_baseline=baseline, code="x",
                                                           mind=mind, origin=origin), run_id=RUN, aggregate_id=arch)
    for arch, fitness, seconds in (("base", 0.5, 30.0), ("cand", 0.64, 40.0)):
        await store.append(events_pb2.TrainingRequested(arch_id=arch, job_id=f"job-{arch}"), run_id=RUN,
                           aggregate_id=arch)
        await store.append(events_pb2.TrainingFinished(arch_id=arch, job_id=f"job-{arch}", val_loss=2.0,
                                                       train_seconds=seconds), run_id=RUN, aggregate_id=arch)
        await store.append(events_pb2.ArchitectureJudged(arch_id=arch, fitness=fitness), run_id=RUN,
                           aggregate_id=arch)
    await store.append(events_pb2.ProposalRejected(arch_id="dup", gate="novelty", reason="a copy of cand"),
                       run_id=RUN, aggregate_id="dup")
    await store.append(events_pb2.ArchitecturePromoted(arch_id="cand", decision="beats both"), run_id=RUN,
                       aggregate_id="cand")
    projection = Projection()
    for record in await store.read_all():
        assert record.env is not None
        projection.apply(record.env, record.event)  # type: ignore[arg-type]
    return projection


async def test_the_discovery_gauges_are_the_fold_of_the_log(store: EventStore):
    metrics.record_discovery(await a_run_with_one_sota(store))
    assert sample("asi_best_fitness", run_id=RUN) == 0.64
    assert sample("asi_sota_architectures", run_id=RUN) == 1
    assert sample("asi_compute_seconds", run_id=RUN) == 70.0, "the baseline's and the candidate's training"
    assert sample("asi_proposals", run_id=RUN, mind="evolve", origin="cognition") == 1
    assert sample("asi_proposals", run_id=RUN, mind="llm:qwen", origin="original") == 1
    assert sample("asi_rejections", run_id=RUN, gate="novelty") == 1
    assert sample("asi_rejections", run_id=RUN, gate="validity") is None


async def test_recording_again_after_a_restart_gives_the_same_values(store: EventStore):
    """The analyst records on every catch-up: a second fold of the same log changes nothing."""
    projection = await a_run_with_one_sota(store)
    metrics.record_discovery(projection)
    first = sample("asi_sota_architectures", run_id=RUN), sample("asi_compute_seconds", run_id=RUN)
    metrics.record_discovery(projection)
    assert (sample("asi_sota_architectures", run_id=RUN), sample("asi_compute_seconds", run_id=RUN)) == first


def test_an_llm_answer_counts_its_tokens_and_time():
    model = "test-model"
    before = sample("asi_llm_tokens_total", model=model, kind="prompt") or 0.0
    metrics.observe_llm_exchange(model, Exchange("p", "r", {}, prompt_tokens=120, completion_tokens=30, seconds=2.0))
    assert sample("asi_llm_tokens_total", model=model, kind="prompt") == before + 120
    assert sample("asi_llm_tokens_total", model=model, kind="completion") == 30
    assert sample("asi_llm_request_seconds_count", model=model) == 1
    assert sample("asi_llm_request_seconds_bucket", model=model, le="2.5") == 1
    assert sample("asi_llm_request_seconds_bucket", model=model, le="1.0") == 0
