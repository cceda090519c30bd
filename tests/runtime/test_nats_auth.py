"""The embedded server's authentication and per-service permissions, against a real nats-server
started with the configuration a data dir generates: no anonymous client, one password per role,
and each role publishing only the event types it owns."""

from __future__ import annotations

import asyncio
import re
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import nats.errors
import pytest

from services.pb import events_pb2
from services.runtime.eventstore import EVENTS_STREAM, EventStore, redacted
from services.runtime.natsauth import OPERATOR, OWNED_EVENTS, ROLES, NatsAuth, password_variable
from services.runtime.natsserver import EmbeddedNats


@pytest.fixture
def auth(tmp_path: Path) -> NatsAuth:
    return NatsAuth.of_data_dir(tmp_path / "asi")


@pytest.fixture
def server(auth: NatsAuth, tmp_path: Path) -> Iterator[EmbeddedNats]:
    running = EmbeddedNats(tmp_path / "asi" / "nats", config=auth.config_path)
    running.start()
    yield running
    running.stop()


async def open_as(server: EmbeddedNats, auth: NatsAuth, role: str) -> EventStore:
    user, password = auth.credentials(role)
    return await EventStore.open(server.url, role, user=user, password=password)


@pytest.fixture
async def operator(server: EmbeddedNats, auth: NatsAuth) -> AsyncIterator[EventStore]:
    store = await open_as(server, auth, OPERATOR)
    yield store
    await store.close()


def test_the_credentials_are_private_and_stable(auth: NatsAuth, tmp_path: Path) -> None:
    for path in (auth.folder / "credentials.json", auth.config_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(auth.folder.stat().st_mode) == 0o700
    assert set(auth.passwords) == set(ROLES) and len(set(auth.passwords.values())) == len(ROLES)
    assert NatsAuth.of_data_dir(tmp_path / "asi").passwords == auth.passwords  # a restart keeps them


async def test_a_client_without_the_right_password_is_refused(server: EmbeddedNats, auth: NatsAuth) -> None:
    for credentials in ({}, {"user": "engineer", "password": "guessed"}, {"user": "nobody", "password": "x"}):
        with pytest.raises((nats.errors.Error, OSError)) as refused:
            await nats.connect(server.url, allow_reconnect=False, connect_timeout=2, **credentials)
        assert "authorization" in str(refused.value).lower() or isinstance(refused.value, nats.errors.NoServersError)


async def test_each_role_appends_the_events_it_owns(server: EmbeddedNats, auth: NatsAuth,
                                                    operator: EventStore) -> None:
    for role in ("engineer", "judge"):
        store = await open_as(server, auth, role)
        event = (events_pb2.TrainingStarted(arch_id="a1", job_id="j1", worker="w") if role == "engineer"
                 else events_pb2.ArchitectureJudged(arch_id="a1", fitness=0.5))
        assert event.DESCRIPTOR.name in OWNED_EVENTS[role]
        await store.append(event, run_id="r", aggregate_id="arch-a1")
        await store.close()
    assert [r.env.type for r in await operator.read_all() if r.env] == ["TrainingStarted", "ArchitectureJudged"]


async def test_an_engineer_cannot_forge_a_verdict_or_touch_the_stream(server: EmbeddedNats, auth: NatsAuth,
                                                                     operator: EventStore) -> None:
    engineer = await open_as(server, auth, "engineer")
    try:
        assert "ArchitectureJudged" not in OWNED_EVENTS["engineer"]
        # The server drops the publish as a permissions violation: no acknowledgement ever comes.
        with pytest.raises((nats.errors.TimeoutError, asyncio.TimeoutError)):
            await engineer.append(events_pb2.ArchitectureJudged(arch_id="a1", fitness=1.0), run_id="r",
                                  aggregate_id="arch-a1", deadline_s=0)
        # Straight onto the subject, past the store: the same.
        with pytest.raises((nats.errors.TimeoutError, asyncio.TimeoutError)):
            await engineer.js.publish("asi.events.arch-a1.ArchitectureJudged", b"forged", timeout=1)
        for attempt in (engineer.js.purge_stream(EVENTS_STREAM), engineer.js.delete_stream(EVENTS_STREAM)):
            with pytest.raises((nats.errors.TimeoutError, asyncio.TimeoutError, nats.errors.Error)):
                await asyncio.wait_for(attempt, 3)
    finally:
        await engineer.close()
    assert await operator.read_all() == []  # nothing reached the log
    assert (await operator.js.stream_info(EVENTS_STREAM)).state.messages == 0


async def test_the_printed_block_gives_a_server_of_your_own_the_same_users_and_permissions(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    printed = subprocess.run([sys.executable, "-m", "services.cli", "nats-authorization"], capture_output=True,
                             text=True, check=True, timeout=60).stdout
    passwords = {role: f"pw-{role}-{n}" for n, role in enumerate(ROLES)}
    assert not any(password in printed for password in passwords.values())  # references, not secrets
    for role, password in passwords.items():
        monkeypatch.setenv(password_variable(role), password)  # the server's environment (a Secret, in a pod)
    config = tmp_path / "authorization.conf"
    config.write_text(printed)
    own = EmbeddedNats(tmp_path / "nats", config=config)
    own.start()
    try:
        judge = await EventStore.open(own.url, "judge", user="judge", password=passwords["judge"])
        await judge.append(events_pb2.ArchitectureJudged(arch_id="a1", fitness=0.5), run_id="r",
                           aggregate_id="arch-a1")
        with pytest.raises((nats.errors.TimeoutError, asyncio.TimeoutError)):
            await judge.append(events_pb2.TrainingFinished(arch_id="a1"), run_id="r", aggregate_id="arch-a1",
                               deadline_s=0)
        await judge.close()
    finally:
        own.stop()


async def test_credentials_in_the_url_log_in_and_are_never_logged(server: EmbeddedNats, auth: NatsAuth) -> None:
    user, password = auth.credentials("judge")
    url = server.url.replace("nats://", f"nats://{user}:{password}@")
    store = await EventStore.open(url, "judge")  # as `--nats URL` gives it
    await store.append(events_pb2.ArchitectureJudged(arch_id="a1", fitness=0.5), run_id="r", aggregate_id="arch-a1")
    await store.close()
    assert redacted(url) == server.url.replace("nats://", "nats://judge:***@")
    assert redacted(server.url) == server.url


def test_each_service_owns_every_event_type_it_builds() -> None:
    # A type a service appends but does not own would be dropped by the server (the append times
    # out): so the code of each service may build only the event types its role owns.
    root = Path(__file__).resolve().parents[2] / "services"
    for role, owned in OWNED_EVENTS.items():
        built = set()
        for path in (root / role).glob("*.py"):
            built |= set(re.findall(r"events_pb2\.([A-Z]\w+)\(", path.read_text()))
        assert built - {"Citation", "SeedArchitecture"} <= set(owned), (role, built - set(owned))
