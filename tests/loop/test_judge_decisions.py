"""The judge as a real process on a real nats-server: both baselines in every fitness, the leak
rule on results planted after the pre-flight, and a promotion from its request to its decision.

The trainings here are planted (hand-made TrainingFinished events, checkpoints saved by the
test) so that each path is taken for certain; tests/loop/test_promotion_tiny.py trains for real.
"""

from __future__ import annotations

import json

from services.pb import events_pb2
from services.runtime import envelope
from services.runtime.eventstore import JOBS_STREAM, EventStore
from tests.engineer import mixers
from tests.judge import planted
from tests.judge.leaky import LONG_RANGE_PEEK
from tests.loop.conftest import Services, of_type, wait_for

RUN = "run-j"


async def trained(store: EventStore, arch: str, *, code: str = "x", parent: str = "", baseline: bool = False,
                  val_loss: float, bench: float, checkpoint: str = "", job: str = "", seed: int = 0,
                  replicate: bool = False) -> None:
    common = {"run_id": RUN, "aggregate_id": arch}
    if not replicate:
        await store.append(events_pb2.ArchitectureProposed(
            arch_id=arch, name=arch, parent_ids=[parent] if parent else [], code=code, is_baseline=baseline,
            components={} if baseline else {"update": "delta", "decay": arch}, fingerprint=f"fp-{arch}"), **common)
    job = job or f"job-{arch}"
    if not replicate:
        await store.append(events_pb2.TrainingRequested(arch_id=arch, job_id=job, profile="tiny", seed=seed),
                           **common)
    await store.append(events_pb2.TrainingFinished(arch_id=arch, job_id=job, val_loss=val_loss, benchmark_mean=bench,
                                                   benchmarks={"mqar": bench}, params=20_000, tokens_per_s=900.0,
                                                   flops_per_token=1.0e6, train_seconds=12.0, checkpoint=checkpoint),
                       **common)


def payloads(records: list, name: str) -> dict:
    return {envelope.unpack(r.env).arch_id: envelope.unpack(r.env) for r in of_type(records, name)}


async def test_the_judge_discards_a_planted_leak_verifies_a_fair_win_and_decides_its_promotion(
        store: EventStore, services: Services) -> None:
    data = services.data_dir
    corpus = planted.corpus(data / "text")  # not data / "corpus": the split cache lives there
    await store.append(events_pb2.RunStarted(profile="tiny", experiments=2, corpus=str(corpus)), run_id=RUN,
                       aggregate_id=RUN)
    services.start("judge", ASI_PROMOTE_TOP_K="1")
    await trained(store, "b1", baseline=True, val_loss=3.02, bench=0.30)
    await trained(store, "b2", baseline=True, val_loss=2.95, bench=0.28)
    # Causal on short inputs, peeking on long ones, and "trained" to 0.81: the case.
    await trained(store, "c-leak", code=LONG_RANGE_PEEK, parent="b1", val_loss=0.81, bench=0.9,
                  checkpoint=planted.checkpoint(LONG_RANGE_PEEK, data))
    # A causal mixer whose loss is also more than 10% below the best baseline's: re-checked, then judged.
    await trained(store, "c-fair", code=mixers.CAUSAL_MEAN, parent="b1", val_loss=2.50, bench=0.40,
                  checkpoint=planted.checkpoint(mixers.CAUSAL_MEAN, data))

    records = await wait_for(store, lambda rs: len(of_type(rs, "LeakChecked")) == 2, 240, "both leak checks")
    checked = payloads(records, "LeakChecked")
    assert checked["c-fair"].verdict == "verified", checked["c-fair"].evidence_json
    def replicas(rs: list) -> list:
        return [e for e in (envelope.unpack(r.env) for r in of_type(rs, "TrainingRequested")) if e.purpose]

    records = await wait_for(store, lambda rs: len(replicas(rs)) == 6, 60, "a promotion's six re-runs")
    leak = checked["c-leak"]
    evidence = json.loads(leak.evidence_json)
    assert leak.verdict == "leak" and "not causal at length 144" in leak.reason
    assert evidence["trigger"]["best_baseline"] == "b2" and evidence["causality"]["leaking_positions"]
    assert evidence["overlap"]["overlaps"] is False
    discarded = payloads(records, "ArchitectureDiscarded")["c-leak"]
    assert discarded.failure_kind == "leak" and "72.5% below b2's" in discarded.reason
    judged = payloads(records, "ArchitectureJudged")
    assert "c-leak" not in judged

    fair = judged["c-fair"]
    detail = json.loads(fair.terms_json)
    assert list(fair.baseline_arch_ids) == ["b1", "b2"] and fair.leak_check == "verified" and fair.promote
    assert detail["decided_by"]["loss"] == "b2" and detail["decided_by"]["benchmark"] == "b1"
    assert set(detail["per_baseline"]) == {"b1", "b2"}
    assert all(list(judged[b].baseline_arch_ids) == ["b1", "b2"] and not judged[b].promote for b in ("b1", "b2"))

    request = payloads(records, "PromotionRequested")["c-fair"]
    plan = json.loads(request.jobs_json)
    assert list(request.seeds) == [0, 1, 2] and "paired t-test" in request.test
    assert plan["c-fair"]["0"] == "job-c-fair" and plan["b1"]["0"] == "job-b1"  # seed 0 is reused, not retrained
    assert {r.purpose for r in replicas(records)} == {"replicate"}
    assert sorted(r.job_id for r in replicas(records)) == sorted(plan[a][s] for a in plan for s in ("1", "2"))
    queued = await store.js.stream_info(JOBS_STREAM)
    assert queued.state.messages == 6  # the re-runs are ordinary jobs on the queue

    # The engineer's part, planted: every re-run finishes; the candidate wins on every seed.
    runs = {"c-fair": ((2.52, 0.41), (2.49, 0.43)), "b1": ((3.05, 0.31), (3.00, 0.29)),
            "b2": ((2.97, 0.27), (2.93, 0.30))}
    for arch, per_seed in runs.items():
        for seed, (loss, bench) in zip((1, 2), per_seed, strict=True):
            await trained(store, arch, val_loss=loss, bench=bench, job=plan[arch][str(seed)], seed=seed,
                          replicate=True)
    records = await wait_for(store, lambda rs: of_type(rs, "ArchitecturePromoted") or of_type(rs, "PromotionDenied"),
                             120, "the promotion's decision")
    promoted = payloads(records, "ArchitecturePromoted")["c-fair"]
    statistics = json.loads(promoted.statistics_json)
    assert promoted.decision.startswith("SOTA") and set(statistics) == {
        "b1/val_loss", "b1/benchmark_mean", "b2/val_loss", "b2/benchmark_mean"}
    assert json.loads(promoted.per_seed_json)["c-fair"]["0"] == {"val_loss": 2.50, "benchmark_mean": 0.40}
    assert all(s["passed"] and s["p"] < 0.05 for s in statistics.values())


async def test_a_screened_promotion_re_runs_one_seed_first_and_only_a_candidate_ahead_there_gets_the_rest(
        store: EventStore, services: Services) -> None:
    """Exploring at one profile and promoting at another: each promotion is re-trained on its first
    seed alone; the candidate behind Gated DeltaNet's loss there is denied, the one ahead of both on
    both metrics gets the other two seeds (the judge reads only the profiles' names; nothing trains)."""
    await store.append(events_pb2.RunStarted(profile="explore", promotion_profile="tiny", experiments=2),
                       run_id=RUN, aggregate_id=RUN)
    services.start("judge", ASI_PROMOTE_TOP_K="2", ASI_PROMOTE_ABOVE_BASELINES="0")
    await trained(store, "b1", baseline=True, val_loss=3.02, bench=0.30)
    await trained(store, "b2", baseline=True, val_loss=2.95, bench=0.28)
    await trained(store, "c-behind", parent="b1", val_loss=2.90, bench=0.35)
    await trained(store, "c-ahead", parent="b1", val_loss=2.85, bench=0.36)

    def replicas(rs: list) -> list[str]:
        return sorted(e.job_id for e in (envelope.unpack(r.env) for r in of_type(rs, "TrainingRequested"))
                      if e.purpose == "replicate")

    records = await wait_for(store, lambda rs: len(of_type(rs, "PromotionRequested")) == 2, 60, "two promotions")
    assert replicas(records) == ["job-b1-seed0", "job-b2-seed0", "job-c-ahead-seed0", "job-c-behind-seed0"]
    for request in (envelope.unpack(r.env) for r in of_type(records, "PromotionRequested")):
        assert list(request.seeds) == [0] and "screened first" in request.test
    # The screen's seed at the promotion profile: c-behind trails b2's loss there, c-ahead leads everywhere.
    screen_runs = {"b1": (3.00, 0.31), "b2": (2.93, 0.29), "c-behind": (2.95, 0.40), "c-ahead": (2.80, 0.38)}
    for arch, (loss, bench) in screen_runs.items():
        await trained(store, arch, val_loss=loss, bench=bench, job=f"job-{arch}-seed0", replicate=True)
    records = await wait_for(store, lambda rs: of_type(rs, "PromotionDenied") and len(replicas(rs)) == 10, 60,
                             "a screen-out and the survivor's other seeds")
    denied = payloads(records, "PromotionDenied")["c-behind"]
    assert list(denied.seeds) == [0] and denied.decision == (
        "not SOTA: screened out on seed 0, not better on val_loss against b2 (-0.0200)")
    assert json.loads(denied.statistics_json)["b2/val_loss"]["passed"] is False
    extended = [envelope.unpack(r.env) for r in of_type(records, "PromotionRequested")][-1]
    assert extended.arch_id == "c-ahead" and list(extended.seeds) == [0, 1, 2]
    assert extended.reason.startswith("through the screen on seed 0")
    assert json.loads(extended.jobs_json)["c-ahead"]["0"] == "job-c-ahead-seed0"  # the screen's run is reused
    assert replicas(records) == sorted([f"job-{a}-seed{s}" for a in ("b1", "b2", "c-ahead") for s in (0, 1, 2)]
                                       + ["job-c-behind-seed0"])
    assert not of_type(records, "ArchitecturePromoted")  # undecided until its other seeds are in
