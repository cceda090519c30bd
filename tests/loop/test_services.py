"""Cognition and analyst as real processes: gRPC health goes SERVING once they have caught
up with the log, the analyst files experience into cognition and answers lineage queries,
and each serves Prometheus metrics."""

from __future__ import annotations

import asyncio
import shutil
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.cognition.client import CognitionClient
from services.pb import events_pb2, lineage_pb2, lineage_pb2_grpc
from services.runtime import envelope
from services.runtime.eventstore import EventStore
from tests.loop.conftest import Services, free_port, of_type, wait_for
from tests.recorded_llm import RecordedAnswerServer


async def wait_serving(address: str, timeout_s: float = 180) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for _ in range(int(timeout_s / 0.5)):
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.5)
    raise AssertionError(f"{address} never reported SERVING")


async def seed_history(store: EventStore, *, judged: bool = True) -> None:
    """A baseline and one child, trained (and judged): what the judge and the analyst act on."""
    run = await store.append(events_pb2.RunStarted(profile="tiny", experiments=1), run_id="run-s", aggregate_id="run-s")
    for arch, parents, fitness, loss in (("arch-base", [], 0.5, 2.4), ("arch-kid", ["arch-base"], 0.62, 2.3)):
        components = {"update": "delta", "decay": "none" if not parents else "scalar"}
        common = {"run_id": "run-s", "aggregate_id": arch, "correlation_id": run.event_id}
        await store.append(events_pb2.ArchitectureProposed(arch_id=arch, name=arch, parent_ids=parents,
                                                           components=components, is_baseline=not parents,
                                                           code="x"), **common)
        await store.append(events_pb2.TrainingRequested(arch_id=arch, job_id="j-" + arch), **common)
        await store.append(events_pb2.TrainingFinished(arch_id=arch, val_loss=loss, benchmark_mean=0.4,
                                                       benchmarks={"mqar": 0.4}, params=1000,
                                                       tokens_per_s=1000, flops_per_token=1.0e6), **common)
        if judged:
            await store.append(events_pb2.ArchitectureJudged(arch_id=arch, fitness=fitness), **common)


async def test_analyst_files_experience_into_cognition_and_answers_lineage(store: EventStore,
                                                                          services: Services) -> None:
    cognition_port, analyst_port, metrics_port = free_port(), free_port(), free_port()
    first_cognition = services.start("cognition", ASI_GRPC_PORT=str(cognition_port))
    services.start("analyst", ASI_GRPC_PORT=str(analyst_port), ASI_METRICS_PORT=str(metrics_port),
                   ASI_COGNITION_ADDR=f"127.0.0.1:{cognition_port}")
    await asyncio.gather(wait_serving(f"127.0.0.1:{cognition_port}"), wait_serving(f"127.0.0.1:{analyst_port}"))

    cognition = CognitionClient(f"127.0.0.1:{cognition_port}")
    literature = await cognition.search("improve associative recall of a linear RNN", k=3, kinds=("cognition",))
    assert len(literature) == 3 and all(h.kind == "cognition" and h.paper for h in literature)

    await seed_history(store)
    records = await wait_for(store, lambda rs: len(of_type(rs, "ArchitectureAnalyzed")) == 2, 120, "two analyses")
    payloads = [envelope.unpack(r.env) for r in of_type(records, "ArchitectureAnalyzed")]
    analyses = {a.arch_id: a for a in payloads}
    assert analyses["arch-base"].outcome == "baseline"
    kid = analyses["arch-kid"]
    assert kid.outcome == "improved" and "decay: none -> scalar" in kid.summary and "decay=scalar" in kid.tags

    experience = await cognition.search(kid.summary, k=5, kinds=("experience",), run_id="run-s")
    assert kid.experience_id in [h.id for h in experience]
    await cognition.close()

    # A lost Qdrant store is rebuilt: the corpus from its files, experience from the log.
    services.kill(first_cognition)
    shutil.rmtree(services.data_dir / "qdrant")
    rebuilt_port = free_port()
    services.start("cognition", ASI_GRPC_PORT=str(rebuilt_port))
    await wait_serving(f"127.0.0.1:{rebuilt_port}")
    rebuilt = CognitionClient(f"127.0.0.1:{rebuilt_port}")
    for _ in range(40):  # the experience is re-filed once the service has caught up with the log
        experience = await rebuilt.search(kid.summary, k=5, kinds=("experience",), run_id="run-s")
        if kid.experience_id in [h.id for h in experience]:
            break
        await asyncio.sleep(0.5)
    assert kid.experience_id in [h.id for h in experience]
    assert len(await rebuilt.search("state decay gate", k=3, kinds=("cognition",))) == 3
    await rebuilt.close()

    async with grpc.aio.insecure_channel(f"127.0.0.1:{analyst_port}") as channel:
        lineage = lineage_pb2_grpc.LineageStub(channel)
        board = await lineage.GetLeaderboard(lineage_pb2.GetLeaderboardRequest(k=5))
        assert [row.arch_id for row in board.rows] == ["arch-kid", "arch-base"]
        family = await lineage.GetLineage(lineage_pb2.GetLineageRequest(arch_id="arch-kid"))
        assert list(family.ancestors) == ["arch-base"]

    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
        exposition = response.read().decode()
    assert 'asi_events_consumed_total{service="analyst",type="ArchitectureJudged"} 2.0' in exposition
    assert 'asi_experiments_total{outcome="improved"} 1.0' in exposition
    assert 'asi_events_published_total{service="analyst",type="ArchitectureAnalyzed"} 2.0' in exposition


async def test_with_an_llm_the_judge_and_analyst_record_prompts_and_answers(store: EventStore,
                                                                          services: Services) -> None:
    """Against the recorded-answer server standing in for vLLM."""
    with RecordedAnswerServer.from_files(rubric="rubric.chat-completion.json",
                                         analysis="analysis.chat-completion.json") as llm:
        llm_env = {"ASI_LLM_URL": llm.base_url, "ASI_LLM_MODEL": "qwen2.5-7b-instruct"}
        cognition_port = free_port()
        services.start("cognition", ASI_GRPC_PORT=str(cognition_port))
        services.start("judge", **llm_env)
        services.start("analyst", ASI_COGNITION_ADDR=f"127.0.0.1:{cognition_port}", **llm_env)
        await seed_history(store, judged=False)
        records = await wait_for(store, lambda rs: len(of_type(rs, "ArchitectureAnalyzed")) == 2, 240,
                                 "judgement and analysis")

    judged = {j.arch_id: j for j in (envelope.unpack(r.env) for r in of_type(records, "ArchitectureJudged"))}
    kid = judged["arch-kid"]
    assert kid.judge == "llm:qwen2.5-7b-instruct" and kid.terms["quality"] == 0.75
    assert "rubric 7.5/10" in kid.rationale and "Gated DeltaNet recipe" in kid.rationale
    assert "arch-kid" in kid.prompt and '"score": 7.5' in kid.response
    assert kid.terms["loss"] > 0.5  # the measured terms still come from the numbers
    analysed = {a.arch_id: a for a in (envelope.unpack(r.env) for r in of_type(records, "ArchitectureAnalyzed"))}
    assert analysed["arch-kid"].analyst == "llm:qwen2.5-7b-instruct"
    assert "forget stale associations" in analysed["arch-kid"].summary
    assert analysed["arch-base"].analyst == "heuristic"  # the baseline needs no explanation
    schemas = [r["response_format"]["json_schema"]["name"] for r in llm.requests]
    assert sorted(schemas) == ["analysis", "rubric", "rubric"]
