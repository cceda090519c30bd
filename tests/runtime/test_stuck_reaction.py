"""A reaction that keeps failing with one error ends its service with that error; one that fails
and then recovers, or fails in changing ways, does not. Real nats-server, the real follow loop."""

from __future__ import annotations

import asyncio

import pytest

from services.runtime import app
from services.runtime.app import EventService, ReactionStuck
from services.runtime.config import Settings
from services.runtime.eventstore import EventStore


@pytest.fixture(autouse=True)
def settings(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ASI_NATS_URL", "nats://127.0.0.1:1")  # read, never dialled: the store is given
    monkeypatch.setenv("ASI_DATA_DIR", str(tmp_path))


class Reacting(EventService):
    name = "reacting"

    def __init__(self, store: EventStore, errors: list[Exception | None]) -> None:
        super().__init__(Settings.from_env(), store)
        self.errors, self.reactions = errors, 0

    async def react(self) -> None:
        error = self.errors[min(self.reactions, len(self.errors) - 1)]
        self.reactions += 1
        if error is not None:
            raise error


async def run_for(service: Reacting, seconds: float) -> None:
    """The service's run, stopped after ``seconds`` unless it ended first."""
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(seconds, stop.set)
    await service.run(stop)


async def test_the_same_error_for_the_whole_limit_ends_the_service(store: EventStore,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app, "REACT_STUCK_AFTER", 3)
    service = Reacting(store, [NameError("name 'parnet' is not defined")])
    with pytest.raises(ReactionStuck, match="reacting: 3 reactions in a row failed with NameError: name 'parnet'"):
        await asyncio.wait_for(run_for(service, 60), timeout=30)
    assert service.reactions == 3


async def test_a_reaction_that_recovers_or_fails_differently_lives_on(store: EventStore,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app, "REACT_STUCK_AFTER", 3)
    # Five of the same error, never three in a row; then four that alternate; then success.
    recovering = Reacting(store, [TimeoutError("cognition")] * 2 + [None] + [TimeoutError("cognition")] * 2 + [None])
    changing = Reacting(store, [KeyError("a"), ValueError("b")] * 2 + [None])
    for service, reactions in ((recovering, 6), (changing, 5)):
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop))
        while service.reactions < reactions and not task.done():
            await asyncio.sleep(0.1)
        stop.set()
        await asyncio.wait_for(task, timeout=10)  # ended by the stop, not by an error
        assert service.reactions >= reactions
