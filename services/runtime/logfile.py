"""Reading a run's event log for the audit tools: from a data dir's JetStream store
(joining the server that owns it, or starting one for the read) or from an exported file."""

from __future__ import annotations

import asyncio
import gzip
import io
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TextIO, TypeVar

from services.pb import events_pb2
from services.runtime import envelope
from services.runtime.eventstore import EventStore
from services.runtime.natsauth import OPERATOR, NatsAuth
from services.runtime.natsserver import EmbeddedNats, running_url
from services.runtime.projection import Projection

T = TypeVar("T")


class LogNotFound(FileNotFoundError):
    pass


def with_log(data_dir: Path, work: Callable[[EventStore], Awaitable[T]], *, create: bool = False) -> T:
    """Run `work` against the event log of `data_dir`: through the server that owns it, or one
    started for the call."""
    url = running_url(data_dir)
    if not url and not create and not (data_dir / "nats").is_dir():
        raise LogNotFound(f"no event log in {data_dir} (expected {data_dir / 'nats'}); run `asi-arch run` first")
    auth = NatsAuth.of_data_dir(data_dir)  # the data dir's own credentials, as its server has them
    if url:
        return asyncio.run(_with_store(url, auth, work))
    with EmbeddedNats(data_dir / "nats", url_file=data_dir / "nats.url", config=auth.config_path) as server:
        return asyncio.run(_with_store(server.url, auth, work))


async def _with_store(url: str, auth: NatsAuth, work: Callable[[EventStore], Awaitable[T]]) -> T:
    user, password = auth.credentials(OPERATOR)
    store = await EventStore.open(url, "cli", user=user, password=password)
    try:
        return await work(store)
    finally:
        await store.close()


def read_data_dir(data_dir: Path) -> list[events_pb2.Envelope]:
    """The valid events of the log in `data_dir`, in chain order."""

    async def read(store: EventStore) -> list[events_pb2.Envelope]:
        return [r.env for r in await store.read_all() if r.env is not None]

    return with_log(data_dir, read)


def open_export(path: Path, mode: str = "r") -> TextIO:
    """An exported log to read or write ("w"), gzip-compressed when its name ends in ``.gz`` (a
    committed run); compressed at a fixed mtime, so one log always gives the same bytes."""
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.GzipFile(path, mode + "b", mtime=0), encoding="utf-8")
    return path.open(mode)


def read_file(path: Path) -> list[events_pb2.Envelope]:
    """Events of an exported file; raises MalformedEvent on a line that does not parse."""
    if not path.exists():
        raise LogNotFound(f"{path} does not exist")
    with open_export(path) as handle:
        lines = [line.rstrip("\n") for line in handle if line.strip()]
    if lines and envelope.parse_trailer(lines[-1]) is not None:
        lines.pop()  # the export's seal: `events verify` checks it
    return [envelope.from_line(line) for line in lines]


def fold(events: list[events_pb2.Envelope]) -> Projection:
    projection = Projection()
    for env in events:
        projection.apply(env, envelope.unpack(env))
    return projection
