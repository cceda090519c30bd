"""Reading a run's event log for the audit tools: from a data dir's JetStream store
(joining the server that owns it, or starting one for the read) or from an exported file."""

from __future__ import annotations

import asyncio
from pathlib import Path

from services.pb import events_pb2
from services.runtime import envelope
from services.runtime.eventstore import EventStore
from services.runtime.natsserver import EmbeddedNats, running_url
from services.runtime.projection import Projection


class LogNotFound(FileNotFoundError):
    pass


def read_data_dir(data_dir: Path) -> list[events_pb2.Envelope]:
    """The valid events of the log in `data_dir`, in chain order."""
    url = running_url(data_dir)
    if url:
        return asyncio.run(_read(url))
    if not (data_dir / "nats").is_dir():
        raise LogNotFound(f"no event log in {data_dir} (expected {data_dir / 'nats'}); run `asi-arch run` first")
    with EmbeddedNats(data_dir / "nats", url_file=data_dir / "nats.url") as server:
        return asyncio.run(_read(server.url))


async def _read(url: str) -> list[events_pb2.Envelope]:
    store = await EventStore.open(url, "audit")
    try:
        return [r.env for r in await store.read_all() if r.env is not None]
    finally:
        await store.close()


def read_file(path: Path) -> list[events_pb2.Envelope]:
    """Events of an exported file; raises MalformedEvent on a line that does not parse."""
    if not path.exists():
        raise LogNotFound(f"{path} does not exist")
    with path.open() as lines:
        return [envelope.from_line(line.rstrip("\n")) for line in lines if line.strip()]


def fold(events: list[events_pb2.Envelope]) -> Projection:
    projection = Projection()
    for env in events:
        projection.apply(env, envelope.unpack(env))
    return projection
