"""Throughput of the event log: a benchmark, not a test.

`python -m services.runtime.bench_load [--appends 2000] [--replay-events 100000]` starts an
embedded nats-server in a temporary folder and measures, in one process:

1. `EventStore.append`, one awaited append at a time, each with its idempotency key
   (`Nats-Msg-Id`) and its optimistic-concurrency guards (the stream's and the aggregate's expected
   last sequence, with `expected_version` given), over a mix of training events spread across
   aggregates; then a bare JetStream publish of exactly the bytes the store sealed, into a
   stream of the same kind, awaited one at a time and without headers. Appends are reported as
   events/s, p50 and p99 latency, and their ratio to the bare publish: what the guarantees cost.
2. Replay: a log of `--replay-events` valid, chained events (published pipelined, as fast as the
   server takes them) read back by a fresh store and folded into the projections, as a service
   starting on a data dir does (`follow` reads a long stretch in batches of `READ_BATCH`, each
   message decoded, its hash checked and linked to the chain); reported as events/s, the
   latencies as each batch's time per event.
3. The training queue: `--queue-jobs` short jobs (refused by the engineer's static check, so the
   queue, the lease and each job's two events are what is timed) through the real queue to one
   engineer process, then to `--queue-workers` of them: jobs/s, the speed-up over one engineer,
   each worker's share and the busiest worker's share over an even one.

Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from google.protobuf.message import Message
from nats.js import api

from services.pb import events_pb2, jobs_pb2
from services.runtime import envelope, jobs
from services.runtime.eventstore import JOBS_STREAM, EventStore, subject_of
from services.runtime.natsserver import EmbeddedNats
from services.runtime.projection import Projection

BARE_STREAM = "BENCH_BARE"
AGGREGATES = 100  # appends spread over this many architectures, as a run's are
CODE = "import torch\n" + "# a candidate's source, about a kilobyte\n" * 25


@dataclass(frozen=True)
class Timing:
    events: int
    seconds: float
    events_per_s: float
    p50_ms: float
    p99_ms: float


def timing(latencies: list[float], seconds: float) -> Timing:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return Timing(len(ordered), round(seconds, 3), round(len(ordered) / seconds, 1),
                  round(statistics.median(ordered) * 1000, 3), round(p99 * 1000, 3))


def experiment_events(index: int) -> list[tuple[str, Message]]:
    """One architecture's life as the loop logs it: (aggregate id, payload), ten events."""
    arch = f"a{index}"
    job = f"job-{index}"
    events: list[Message] = [
        events_pb2.ArchitectureProposed(arch_id=arch, name=f"mixer-{index}", code=CODE, motivation="bench"),
        events_pb2.TrainingRequested(arch_id=arch, job_id=job, profile="tiny", seed=index),
        events_pb2.TrainingStarted(arch_id=arch, job_id=job, worker="bench", delivery=1),
        *(events_pb2.TrainingProgress(arch_id=arch, job_id=job, step=step, steps=60, train_loss=3.0 - step / 60,
                                      tokens_per_s=10_000.0) for step in range(10, 70, 10)),
        events_pb2.TrainingFinished(arch_id=arch, job_id=job, val_loss=2.5, params=100_000, train_seconds=10.0),
    ]
    return [(f"arch-{arch}", event) for event in events]


def event_mix(count: int, aggregates: int) -> list[tuple[str, Message]]:
    """`count` events interleaved across `aggregates` architectures, like concurrent experiments."""
    lives = [experiment_events(i) for i in range(aggregates)]
    mixed = []
    for round_index in range(count):
        life = lives[round_index % aggregates]
        aggregate_id, event = life[(round_index // aggregates) % len(life)]
        mixed.append((aggregate_id, event))
    return mixed


async def bench_appends(url: str, count: int) -> tuple[Timing, Timing]:
    """(EventStore.append, bare publish of the same bytes)."""
    store = await EventStore.open(url, "bench")
    try:
        versions: dict[str, int] = {}
        sealed: list[tuple[str, bytes]] = []
        latencies = []
        started = time.perf_counter()
        for index, (aggregate_id, payload) in enumerate(event_mix(count, AGGREGATES)):
            began = time.perf_counter()
            env = await store.append(payload, run_id="bench", aggregate_id=aggregate_id,
                                     expected_version=versions.get(aggregate_id, 0),
                                     event_id=envelope.event_id_for("bench", str(index)))
            latencies.append(time.perf_counter() - began)
            versions[aggregate_id] = env.aggregate_version
            sealed.append((aggregate_id, env.SerializeToString(deterministic=True)))
        appends = timing(latencies, time.perf_counter() - started)

        await store.js.add_stream(api.StreamConfig(
            name=BARE_STREAM, subjects=["bench.bare.>"], storage=api.StorageType.FILE,
            retention=api.RetentionPolicy.LIMITS, deny_delete=True, deny_purge=True, duplicate_window=3600))
        latencies = []
        started = time.perf_counter()
        for aggregate_id, data in sealed:
            began = time.perf_counter()
            await store.js.publish(f"bench.bare.{aggregate_id}", data)
            latencies.append(time.perf_counter() - began)
        bare = timing(latencies, time.perf_counter() - started)
    finally:
        await store.close()
    return appends, bare


async def write_chain(url: str, count: int) -> None:
    """A valid log of `count` events, sealed here and published pipelined (no guards: one writer)."""
    store = await EventStore.open(url, "bench-writer")
    try:
        head_sequence, head_hash = 0, envelope.GENESIS
        versions: dict[str, int] = {}
        for aggregate_id, payload in event_mix(count, max(AGGREGATES, count // 10)):
            env = envelope.build(payload, run_id="replay", aggregate_id=aggregate_id, service="bench")
            version = versions.get(aggregate_id, 0) + 1
            envelope.seal(env, sequence=head_sequence + 1, prev_hash=head_hash, aggregate_version=version)
            head_sequence, head_hash, versions[aggregate_id] = env.sequence, env.hash, version
            await store.js.publish_async(subject_of(aggregate_id, env.type), env.SerializeToString(deterministic=True))
        await store.js.publish_async_completed()
    finally:
        await store.close()


async def bench_replay(url: str, count: int) -> Timing:
    await write_chain(url, count)
    store = await EventStore.open(url, "bench-replay")
    try:
        projection = Projection()
        latencies: list[float] = []
        started = time.perf_counter()
        seq = 1
        while True:
            began = time.perf_counter()
            records = await store.read_from(seq)  # as a service's `follow` reads: in batches
            if not records:
                break
            for record in records:
                if record.env is None or record.event is None:
                    raise RuntimeError(f"message {record.stream_seq} of the benchmark's log is not a valid "
                                       f"event: {record.error}")
                projection.apply(record.env, record.event)
            latencies += [(time.perf_counter() - began) / len(records)] * len(records)
            seq = records[-1].stream_seq + 1
        replay = timing(latencies, time.perf_counter() - started)
    finally:
        await store.close()
    if projection.events != count or store.chain.head_sequence != count:
        raise RuntimeError(f"replayed {projection.events} of {count} events")
    return replay


@dataclass(frozen=True)
class QueueRun:
    workers: int
    jobs: int
    seconds: float
    jobs_per_s: float
    per_worker: dict[str, int]  # jobs each worker finished
    spread: float  # the busiest worker's share over an even share: 1.0 is perfectly even


async def bench_queue(folder: Path, workers: int, count: int) -> QueueRun:
    """`count` short jobs through the real queue to `workers` engineer processes (`asi-arch serve
    engineer`): each job is refused by the engineer's static check, so what is timed is the queue,
    the lease and the two events of each job, not training."""
    with EmbeddedNats(folder / f"queue-{workers}") as server:
        store = await EventStore.open(server.url, "bench-queue")
        env = {**os.environ, "ASI_NATS_URL": server.url, "ASI_DATA_DIR": str(folder / f"data-{workers}"),
               "ASI_GRPC_PORT": "0", "ASI_METRICS_PORT": "0"}
        engineers = [subprocess.Popen([sys.executable, "-m", "services.cli", "serve", "engineer"],
                                      env={**env, "ASI_WORKER_ID": f"engineer-{i}"}, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, start_new_session=True)
                     for i in range(1, workers + 1)]
        try:
            await jobs.ensure_consumer(store.js, ack_wait_s=30, max_deliver=3)
            while (await store.js.consumer_info(JOBS_STREAM, jobs.CONSUMER)).num_waiting < workers:
                await asyncio.sleep(0.1)  # every engineer has its pull request waiting
            started = time.perf_counter()
            for n in range(count):
                await jobs.submit(store.js, jobs_pb2.TrainingJob(
                    job_id=f"job-{n}", arch_id=f"arch-q{n}", run_id="bench", profile="tiny", seed=n,
                    code="import os  # refused by the static check: a job of a few milliseconds\n"))
            outcomes: list = []
            seq = 1
            while len(outcomes) < count:  # read on as the log grows
                records = await store.read_from(seq)
                if not records:
                    await asyncio.sleep(0.02)
                    continue
                outcomes += [r.event for r in records if r.env and r.env.type == "TrainingFailed"]
                seq = records[-1].stream_seq + 1
            seconds = time.perf_counter() - started
        finally:
            for engineer in engineers:
                engineer.terminate()
            for engineer in engineers:
                engineer.wait(timeout=30)
            await store.close()
    per_worker = dict(sorted(Counter(o.worker for o in outcomes).items()))
    return QueueRun(workers, count, round(seconds, 3), round(count / seconds, 1), per_worker,
                    round(max(per_worker.values()) / (count / workers), 3))


async def run(appends: int, replay_events: int, queue_jobs: int, queue_workers: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="asi-bench-load-") as folder:
        # Two servers: the replay's log starts empty, as a data dir's does.
        with EmbeddedNats(Path(folder) / "appends") as server:
            append_timing, bare_timing = await bench_appends(server.url, appends)
        with EmbeddedNats(Path(folder) / "replay") as server:
            replay_timing = await bench_replay(server.url, replay_events)
        one = await bench_queue(Path(folder), 1, queue_jobs)  # the reference: one engineer, same jobs
        many = await bench_queue(Path(folder), queue_workers, queue_jobs)
    return {
        "queue_one_engineer": asdict(one),
        "queue": asdict(many),
        "queue_speedup": round(many.jobs_per_s / one.jobs_per_s, 3),
        "append": asdict(append_timing),
        "bare_publish": asdict(bare_timing),
        "append_to_bare_ratio": round(append_timing.events_per_s / bare_timing.events_per_s, 3),
        "replay": asdict(replay_timing),
        "aggregates": AGGREGATES,
    }


def table(report: dict) -> str:
    rows = [("EventStore.append (idempotent, guarded)", report["append"]),
            ("bare JetStream publish, same bytes", report["bare_publish"]),
            ("replay into the projections", report["replay"])]
    lines = [f"{'':42} {'events':>8} {'events/s':>10} {'p50 ms':>8} {'p99 ms':>8}"]
    lines += [f"{name:42} {t['events']:>8} {t['events_per_s']:>10.1f} {t['p50_ms']:>8.3f} {t['p99_ms']:>8.3f}"
              for name, t in rows]
    lines.append(f"append / bare publish: {report['append_to_bare_ratio']:.3f} of the events/s")
    for key in ("queue_one_engineer", "queue"):
        q = report[key]
        lines.append(f"queue, {q['workers']} engineer(s): {q['jobs']} jobs in {q['seconds']:.2f} s, "
                     f"{q['jobs_per_s']:.1f} jobs/s, per worker {q['per_worker']}, busiest/even {q['spread']:.2f}")
    lines.append(f"queue speed-up, {report['queue']['workers']} engineers over 1: {report['queue_speedup']:.2f}x")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--appends", type=int, default=2000, help="events appended, and published bare")
    parser.add_argument("--replay-events", type=int, default=100_000, help="events in the replayed log")
    parser.add_argument("--queue-jobs", type=int, default=200, help="short jobs through the training queue")
    parser.add_argument("--queue-workers", type=int, default=4, help="engineer processes sharing the queue")
    args = parser.parse_args()
    report = asyncio.run(run(args.appends, args.replay_events, args.queue_jobs, args.queue_workers))
    print(table(report))
    print(json.dumps(report, sort_keys=True))


if __name__ == "__main__":
    main()
