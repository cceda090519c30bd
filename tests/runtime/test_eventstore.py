"""The event store against a real nats-server: the log's guarantees, one story each."""

from __future__ import annotations

import asyncio

import pytest
from nats.js.errors import APIError

from services.pb import events_pb2
from services.runtime import envelope
from services.runtime.eventstore import EVENTS_STREAM, ConcurrencyError, EventStore


def proposed(arch_id: str, name: str = "x") -> events_pb2.ArchitectureProposed:
    return events_pb2.ArchitectureProposed(arch_id=arch_id, name=name, code="class Mixer: ...")


async def test_stream_refuses_purge_and_delete(store: EventStore) -> None:
    await store.append(proposed("a1"), run_id="r", aggregate_id="arch-a1")
    with pytest.raises(APIError) as purge:
        await store.js.purge_stream(EVENTS_STREAM)
    assert purge.value.err_code == 10110
    with pytest.raises(APIError) as delete:
        await store.js.delete_msg(EVENTS_STREAM, 1)
    assert delete.value.err_code == 10057
    assert await store.last_seq() == 1


async def test_duplicate_event_id_is_stored_once(store: EventStore) -> None:
    first = await store.append(proposed("a1"), run_id="r", aggregate_id="arch-a1", event_id="same-id")
    again = await store.append(proposed("a1"), run_id="r", aggregate_id="arch-a1", event_id="same-id")
    assert await store.last_seq() == 1
    assert again.hash == first.hash


async def test_concurrent_writers_exactly_one_wins_and_the_other_retries(store: EventStore) -> None:
    await store.append(proposed("a1"), run_id="r", aggregate_id="arch-a1")
    version = await store.version("arch-a1")
    judged = [events_pb2.ArchitectureJudged(arch_id="a1", fitness=f) for f in (0.1, 0.2)]
    results = await asyncio.gather(
        *(store.append(j, run_id="r", aggregate_id="arch-a1", expected_version=version) for j in judged),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, events_pb2.Envelope)]
    losers = [r for r in results if isinstance(r, ConcurrencyError)]
    assert len(winners) == 1 and len(losers) == 1
    # The loser re-reads the aggregate and decides again from fresh state.
    fresh = await store.version("arch-a1")
    assert fresh == version + 1
    retried = await store.append(judged[1], run_id="r", aggregate_id="arch-a1", expected_version=fresh)
    assert retried.aggregate_version == fresh + 1


async def test_many_writers_keep_one_unbroken_chain(store: EventStore) -> None:
    writers = [store.append(proposed(f"a{i}"), run_id="r", aggregate_id=f"arch-a{i}") for i in range(12)]
    await asyncio.gather(*writers)
    lines = list(envelope.export_lines(r.env for r in await store.read_all() if r.env))
    assert len(lines) == 12 + 1  # and the trailer
    report = envelope.verify_chain(lines)
    assert report.ok, report.reason


async def test_malformed_message_is_rejected_as_an_event_and_skipped(store: EventStore) -> None:
    await store.append(proposed("a1"), run_id="r", aggregate_id="arch-a1")
    await store.nc.publish("asi.events.arch-a1.ArchitectureProposed", b"\xff not an envelope")
    await store.nc.flush()
    await store.append(proposed("a2"), run_id="r", aggregate_id="arch-a2")
    seen: list[str] = []
    stop = asyncio.Event()

    async def handle(record) -> None:  # type: ignore[no-untyped-def]
        seen.append(record.env.type)

    async def idle() -> None:
        stop.set()

    await asyncio.wait_for(store.follow(handle, on_idle=idle, stop=stop), timeout=10)
    # The follower survived, and the rejection itself is an event that others see.
    assert seen == ["ArchitectureProposed", "ArchitectureProposed", "EventRejected"]
    rejected = [r for r in await store.read_all() if r.env and r.env.type == "EventRejected"]
    assert len(rejected) == 1
    assert "not a protobuf envelope" in envelope.unpack(rejected[0].env).reason
    # The chain skips the foreign bytes and still holds.
    assert envelope.verify_chain(envelope.export_lines(r.env for r in await store.read_all() if r.env)).ok


def sealed_next(store: EventStore, payload: events_pb2.ArchitectureProposed, aggregate_id: str) -> bytes:
    env = envelope.build(payload, run_id="r", aggregate_id=aggregate_id, service="test")
    envelope.seal(env, sequence=store.chain.head_sequence + 1, prev_hash=store.chain.head_hash,
                  aggregate_version=store.chain.versions.get(aggregate_id, 0) + 1)
    return env.SerializeToString(deterministic=True)


async def test_an_event_counts_only_on_its_own_aggregates_and_types_subject(store: EventStore) -> None:
    await store.append(proposed("a1"), run_id="r", aggregate_id="arch-a1")
    # A valid next event of arch-a2, published as if it were another type, then on another aggregate.
    for subject in ("asi.events.arch-a2.ArchitectureJudged", "asi.events.arch-a1.ArchitectureProposed"):
        await store.js.publish(subject, sealed_next(store, proposed("a2"), "arch-a2"))
        records = await store.read_all()
        assert records[-1].env is None and "arrived on " + subject in records[-1].error
    # A log written before types ended the subjects is read as it was written.
    await store.js.publish("asi.events.arch-a2", sealed_next(store, proposed("a2"), "arch-a2"))
    assert (await store.read_all())[-1].env is not None
