"""What every service shares: settings, logs, metrics, a gRPC server with health, and
the event-driven main loop (fold the log into a projection, react once caught up)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from services.runtime import log as logging_setup
from services.runtime.config import Settings
from services.runtime.eventstore import EventStore, Record, redacted
from services.runtime.metrics import serve_metrics
from services.runtime.projection import Projection

STOP_GRACE_S = 5.0  # after SIGTERM, how long a reaction in progress may take to finish
# A reaction failing with the same error this many times in a row (about two minutes: the loop idles
# once a second at most) is a defect, not a passing fault such as a server restarting or a peer
# loading its model: the service ends with that error instead of retrying forever, and the
# launcher's restart limit then ends the run with it.
REACT_STUCK_AFTER = 120


class ReactionStuck(RuntimeError):
    """A service's reaction failed with one error ``REACT_STUCK_AFTER`` times in a row."""

Registrar = Callable[[grpc.aio.Server], None]


class EventService:
    """A service whose state is a fold over the log and whose work follows from that state.

    `react` runs each time the service has caught up with the log; it derives pending work
    from the projection, so a restart or a redelivered event never repeats finished work.
    """

    name = "service"

    def __init__(self, settings: Settings, store: EventStore) -> None:
        self.settings = settings
        self.store = store
        self.projection = Projection()
        self.log = logging_setup.get_logger()
        self.caught_up = asyncio.Event()
        self._failing: tuple[str, int] = ("", 0)  # the error the reactions keep failing with, how many times

    async def start(self) -> None:
        """Open the service's own resources (models, stores, clients)."""

    async def close(self) -> None:
        """Release what `start` opened."""

    def registrars(self) -> list[Registrar]:
        """gRPC servicers this service exposes besides health."""
        return []

    async def handle(self, record: Record) -> None:
        assert record.env is not None and record.event is not None
        self.projection.apply(record.env, record.event)

    async def react(self) -> None:
        """Do the work the projection says is pending."""

    async def _idle(self) -> None:
        self.caught_up.set()
        try:
            await self.react()
        except Exception as exc:  # a failed reaction is retried at the next idle, the service lives on
            self.log.exception("react.failed")
            error = f"{type(exc).__name__}: {exc}"
            times = self._failing[1] + 1 if self._failing[0] == error else 1
            self._failing = (error, times)
            if times >= REACT_STUCK_AFTER:
                raise ReactionStuck(f"{self.name}: {times} reactions in a row failed with {error}") from exc
        else:
            self._failing = ("", 0)

    async def run(self, stop: asyncio.Event) -> None:
        await self.store.follow(self.handle, on_idle=self._idle, stop=stop)


async def serve(service_cls: type[EventService]) -> None:
    """The container entry point of one service: runs until SIGTERM or SIGINT."""
    log = logging_setup.configure(service_cls.name)
    settings = Settings.from_env()
    serve_metrics(settings.metrics_port)
    store = await EventStore.open(settings.nats_url, service_cls.name, user=settings.nats_user,
                                  password=settings.nats_password)
    service = service_cls(settings, store)
    await service.start()

    server = grpc.aio.server()
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    for register in service.registrars():
        register(server)
    port = server.add_insecure_port(f"0.0.0.0:{settings.grpc_port}")
    await server.start()
    # NOT_SERVING until the projection has caught up with the log.
    await health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def mark_ready() -> None:
        await service.caught_up.wait()
        await health.set("", health_pb2.HealthCheckResponse.SERVING)
        log.info("service.ready", grpc_port=port)

    ready_task = asyncio.create_task(mark_ready())
    log.info("service.started", grpc_port=port, nats=redacted(settings.nats_url), nats_user=settings.nats_user)
    running = asyncio.create_task(service.run(stop))
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not running.done():
            # A reaction may be retrying an append against a server that is gone (its launcher was
            # killed): after a grace period it is cancelled. Nothing is lost: every reaction follows
            # from the log and its event ids from their cause, so the next start redoes it exactly.
            await asyncio.wait({running}, timeout=STOP_GRACE_S)
            if not running.done():
                log.warning("service.stop_cancelled_reaction", grace_s=STOP_GRACE_S)
                running.cancel()
            await asyncio.gather(running, return_exceptions=True)
        else:
            running.result()  # a service that ended on its own: its error, if any, is the process's
    finally:
        stopping.cancel()
        ready_task.cancel()
        await health.enter_graceful_shutdown()
        await server.stop(grace=2)
        await service.close()
        await store.close()
        log.info("service.stopped")


def main(service_cls: type[EventService]) -> None:
    asyncio.run(serve(service_cls))
