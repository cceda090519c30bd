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
   or `asi-arch replay` starting on a data dir does; reported as events/s.

Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from google.protobuf.message import Message
from nats.js import api

from services.pb import events_pb2
from services.runtime import envelope
from services.runtime.eventstore import EventStore, subject_of
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
        latencies = []
        started = time.perf_counter()
        last = await store.last_seq()
        for seq in range(1, last + 1):
            began = time.perf_counter()
            record = await store.read(seq)
            if record is None or record.env is None or record.event is None:
                raise RuntimeError(f"message {seq} of the benchmark's log is not a valid event: {record}")
            projection.apply(record.env, record.event)
            latencies.append(time.perf_counter() - began)
        replay = timing(latencies, time.perf_counter() - started)
    finally:
        await store.close()
    if projection.events != count or store.chain.head_sequence != count:
        raise RuntimeError(f"replayed {projection.events} of {count} events")
    return replay


async def run(appends: int, replay_events: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="asi-bench-load-") as folder:
        # Two servers: the replay's log starts empty, as a data dir's does.
        with EmbeddedNats(Path(folder) / "appends") as server:
            append_timing, bare_timing = await bench_appends(server.url, appends)
        with EmbeddedNats(Path(folder) / "replay") as server:
            replay_timing = await bench_replay(server.url, replay_events)
    return {
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
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--appends", type=int, default=2000, help="events appended, and published bare")
    parser.add_argument("--replay-events", type=int, default=100_000, help="events in the replayed log")
    args = parser.parse_args()
    report = asyncio.run(run(args.appends, args.replay_events))
    print(table(report))
    print(json.dumps(report, sort_keys=True))


if __name__ == "__main__":
    main()
