"""A restarted NATS server: the store reconnects, appends made while it was down go
through once it is back, and nothing already published is lost."""

from __future__ import annotations

import asyncio
from pathlib import Path

from services.pb import events_pb2
from services.runtime import envelope
from services.runtime.eventstore import EventStore
from services.runtime.natsserver import EmbeddedNats


async def test_appends_survive_a_server_restart(tmp_path: Path) -> None:
    server = EmbeddedNats(tmp_path / "nats")
    server.start()
    store = await EventStore.open(server.url, "test")
    try:
        for i in range(3):
            await store.append(events_pb2.ArchitectureProposed(arch_id=f"a{i}"), run_id="r", aggregate_id=f"a{i}")
        server.stop()
        # Appended while the server is down: retried until it is back.
        pending = asyncio.create_task(
            store.append(events_pb2.ArchitectureProposed(arch_id="a3"), run_id="r", aggregate_id="a3"))
        await asyncio.sleep(1.5)
        assert not pending.done()
        restarted = EmbeddedNats(tmp_path / "nats", port=server.port)
        restarted.start()
        try:
            await asyncio.wait_for(pending, timeout=30)
            await store.append(events_pb2.ArchitectureProposed(arch_id="a4"), run_id="r", aggregate_id="a4")
            records = await store.read_all()
            assert [envelope.unpack(r.env).arch_id for r in records] == ["a0", "a1", "a2", "a3", "a4"]
            assert envelope.verify_chain(envelope.export_lines(r.env for r in records)).ok
        finally:
            await store.close()
            restarted.stop()
    finally:
        server.stop()
