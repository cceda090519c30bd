"""Fault case 4: bad messages on the event subjects, against a real nats-server.

Each story: a log of good events, one bad message published behind the store's back, one good
event after it; a service-like follower (the store's `follow` folding a Projection) reads it
all. The bad message must be logged and recorded as `EventRejected`, the follower must live
on and fold the good event after it, the projection must equal the one of the good events
alone, and the next append must link past the bad message so the chain still verifies.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from services.pb import events_pb2
from services.runtime import envelope, log
from services.runtime.eventstore import EventStore, EventTooLarge, Record
from services.runtime.natsserver import free_port, server_binary
from services.runtime.processes import die_with_parent, stop_group
from services.runtime.projection import Projection

OVERSIZED_BYTES = envelope.MAX_EVENT_BYTES + 4096


def proposed(arch_id: str, code: str = "class Mixer: ...") -> events_pb2.ArchitectureProposed:
    return events_pb2.ArchitectureProposed(arch_id=arch_id, name=arch_id, code=code)


@pytest.fixture
def roomy_nats_url(tmp_path: Path) -> Iterator[str]:
    """A real nats-server whose max_payload (2 MiB) lets an oversized event through to the
    readers, as a cluster's server configured for more would."""
    port, monitor_port = free_port(), free_port()
    config = tmp_path / "nats.conf"
    config.write_text(f"listen: 127.0.0.1:{port}\nhttp: 127.0.0.1:{monitor_port}\nmax_payload: 2MB\n"
                      f"jetstream {{ store_dir: {json.dumps(str(tmp_path / 'nats'))} }}\n")
    server = subprocess.Popen([server_binary(), "-c", str(config)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True, preexec_fn=die_with_parent)
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{monitor_port}/healthz", timeout=1):
                break
        except OSError:
            assert time.monotonic() < deadline and server.poll() is None, "nats-server did not start"
            time.sleep(0.05)
    yield f"nats://127.0.0.1:{port}"
    stop_group(server)


@pytest.fixture
async def store(roomy_nats_url: str) -> AsyncIterator[EventStore]:
    log.configure("faults")  # JSON lines on stderr, so a test can read the rejection's log line
    opened = await EventStore.open(roomy_nats_url, "faults")
    yield opened
    await opened.close()


async def linked(store: EventStore, payload: Any, *, type_name: str = "", aggregate_id: str = "arch-x",
                 edit: Callable[[events_pb2.Envelope], None] | None = None) -> bytes:
    """The bytes of an envelope sealed onto the chain's current head, as a forger would make them."""
    records = await store.read_all()
    head = [r.env for r in records if r.env is not None][-1]
    env = envelope.build(payload, run_id="r", aggregate_id=aggregate_id, service="forger")
    if type_name:
        env.type = type_name
    envelope.seal(env, sequence=head.sequence + 1, prev_hash=head.hash, aggregate_version=1)
    if edit is not None:
        edit(env)
    return env.SerializeToString(deterministic=True)


async def garbage(store: EventStore) -> bytes:
    return b"\xff\x00 not an envelope \x07"


async def unknown_type(store: EventStore) -> bytes:
    # Hashed and linked correctly: only the type is foreign.
    return await linked(store, proposed("x"), type_name="ArchitectureExploded")


async def broken_hash(store: EventStore) -> bytes:
    def flip_last_hex_digit(env: events_pb2.Envelope) -> None:
        env.hash = env.hash[:-1] + ("0" if env.hash[-1] != "0" else "1")

    return await linked(store, proposed("x"), edit=flip_last_hex_digit)


async def oversized(store: EventStore) -> bytes:
    return await linked(store, proposed("x", code="#" * OVERSIZED_BYTES))


async def replayed(store: EventStore) -> bytes:
    # The first event's own bytes, hash intact, published again without a message id.
    first = (await store.read_all())[0]
    assert first.env is not None
    return first.env.SerializeToString(deterministic=True)


BAD_MESSAGES: dict[str, tuple[Callable[[EventStore], Any], str]] = {
    "garbage bytes": (garbage, "not a protobuf envelope"),
    "unknown type": (unknown_type, "unknown event type 'ArchitectureExploded'"),
    "broken hash": (broken_hash, "does not match its content"),
    "oversized": (oversized, f"over the limit of {envelope.MAX_EVENT_BYTES}"),
    "replayed old event": (replayed, "replayed or forged"),
}


async def fold_until_idle(store: EventStore) -> Projection:
    """What a service does: fold every valid event, stop once caught up with the log."""
    projection = Projection()
    stop = asyncio.Event()

    async def handle(record: Record) -> None:
        assert record.env is not None and record.event is not None
        projection.apply(record.env, record.event)

    async def idle() -> None:
        stop.set()

    await asyncio.wait_for(store.follow(handle, on_idle=idle, stop=stop), timeout=20)
    return projection


def views(projection: Projection) -> dict[str, Any]:
    return {"runs": {k: asdict(v) for k, v in projection.runs.items()},
            "archs": {k: asdict(v) for k, v in projection.archs.items()}}


@pytest.mark.parametrize("case", list(BAD_MESSAGES))
async def test_a_bad_message_is_logged_recorded_and_changes_no_projection(
        case: str, store: EventStore, roomy_nats_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    make_bad, reason = BAD_MESSAGES[case]
    await store.append(proposed("a1"), run_id="r", aggregate_id="arch-a1")
    await store.append(proposed("a2"), run_id="r", aggregate_id="arch-a2")
    # The bad message goes to the subject its envelope names (or arch-x), bypassing the store's
    # checks; a JetStream publish returns once it is stored, so the good event lands after it.
    subject = ("asi.events.arch-x.ArchitectureProposed" if case != "replayed old event"
               else "asi.events.arch-a1.ArchitectureProposed")
    bad_seq = (await store.js.publish(subject, await make_bad(store))).seq
    after = await store.append(proposed("a3"), run_id="r", aggregate_id="arch-a3")

    # A fresh reader, like a service starting on this log.
    reader = await EventStore.open(roomy_nats_url, "reader")
    try:
        projection = await fold_until_idle(reader)
    finally:
        await reader.close()

    # The append after the bad message linked past it: one chain of the good events.
    assert after.sequence == 3
    records = await store.read_all()
    good_only = Projection()
    for record in records:
        if record.env is not None and record.env.type == "ArchitectureProposed":
            good_only.apply(record.env, record.event)  # type: ignore[arg-type]
    assert sorted(projection.archs) == ["a1", "a2", "a3"]
    assert views(projection) == views(good_only)

    assert records[bad_seq - 1].env is None and reason in records[bad_seq - 1].error
    rejections = [envelope.unpack(r.env) for r in records if r.env and r.env.type == "EventRejected"]
    assert len(rejections) == 1, "one EventRejected however many readers saw the message"
    assert reason in rejections[0].reason
    assert rejections[0].subject == records[bad_seq - 1].subject
    assert projection.rejected_messages == 1
    valid = [r.env for r in records if r.env is not None]
    assert envelope.verify_chain(envelope.export_lines(valid)).ok

    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    rejected_lines = [line for line in lines if line["event"] == "event.rejected"]
    assert rejected_lines and all(line["stream_seq"] == bad_seq for line in rejected_lines)
    assert reason in rejected_lines[0]["reason"]


async def test_a_reader_restarted_on_a_rejected_message_records_no_second_rejection(
        store: EventStore, roomy_nats_url: str) -> None:
    # Within the duplicate window the server would drop a second EventRejected; beyond it, only the
    # reader's own record of earlier rejections does. So no reader may even try to append one.
    await store.append(proposed("a1"), run_id="r", aggregate_id="arch-a1")
    await store.js.publish("asi.events.arch-a1.ArchitectureProposed", b"\xff garbage")  # returns once stored
    await fold_until_idle(store)
    restarted = await EventStore.open(roomy_nats_url, "restarted")
    try:
        projection = await fold_until_idle(restarted)
    finally:
        await restarted.close()
    assert projection.rejected_messages == 1
    published = REGISTRY.get_sample_value("asi_events_published_total",
                                          {"service": "restarted", "type": "EventRejected"})
    assert not published


async def test_an_append_over_the_size_limit_is_refused_before_it_is_sent(store: EventStore) -> None:
    with pytest.raises(EventTooLarge, match=f"over the limit of {envelope.MAX_EVENT_BYTES}"):
        await store.append(proposed("big", code="#" * OVERSIZED_BYTES), run_id="r", aggregate_id="arch-big")
    assert await store.last_seq() == 0


async def test_a_read_past_the_end_of_the_log_leaves_later_events_to_be_checked(store: EventStore) -> None:
    await store.append(proposed("a1"), run_id="r", aggregate_id="arch-a1")
    assert await store.read(5) is None
    # Messages 2 to 4 are not taken for gaps: they are checked when they arrive.
    await store.js.publish("asi.events.arch-a1.ArchitectureProposed", await replayed(store))
    second = await store.append(proposed("a2"), run_id="r", aggregate_id="arch-a2")
    assert second.sequence == 2
    records = await store.read_all()
    assert [r.env is None for r in records] == [False, True, False]
