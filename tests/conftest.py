"""Shared fixtures: a real nats-server with JetStream on a free loopback port, per test."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from services.runtime.eventstore import EventStore
from services.runtime.natsserver import EmbeddedNats

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EmbeddedNats]:
    server = EmbeddedNats(tmp_path / "nats")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def store(nats_server: EmbeddedNats) -> AsyncIterator[EventStore]:
    opened = await EventStore.open(nats_server.url, "test")
    yield opened
    await opened.close()
