"""Helpers for tests that run the services as real processes against a real nats-server."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from services.runtime.eventstore import EventStore, Record
from services.runtime.natsserver import EmbeddedNats, free_port


class Services:
    """Starts `asi-arch serve NAME` processes and stops every one of them at teardown."""

    def __init__(self, nats: EmbeddedNats, data_dir: Path) -> None:
        self.nats, self.data_dir = nats, data_dir
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, service: str, **env: str) -> subprocess.Popen[bytes]:
        settings = {"ASI_NATS_URL": self.nats.url, "ASI_DATA_DIR": str(self.data_dir), "ASI_GRPC_PORT": "0",
                    "ASI_METRICS_PORT": "0", "HF_HUB_OFFLINE": "1", **env}
        log = open(self.data_dir / f"{service}-{len(self.processes)}.log", "ab")
        process = subprocess.Popen([sys.executable, "-m", "services.cli", "serve", service],
                                   env={**os.environ, **settings}, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        self.processes.append(process)
        return process

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def report(self, lines: int = 25) -> str:
        """How each process ended and the end of its log: pytest shows it beside a failure."""
        parts = []
        for n, process in enumerate(self.processes):
            log = next(self.data_dir.glob(f"*-{n}.log"), None)
            tail = log.read_text(errors="replace").splitlines()[-lines:] if log else []
            parts.append(f"--- {log.name if log else n}: exit {process.returncode}\n" + "\n".join(tail))
        return "\n".join(parts)


@pytest.fixture
def services(nats_server: EmbeddedNats, tmp_path: Path) -> Iterator[Services]:
    running = Services(nats_server, tmp_path)
    yield running
    running.stop_all()
    print(running.report())


async def wait_for(store: EventStore, predicate: Callable[[list[Record]], bool], timeout_s: float,
                   what: str) -> list[Record]:
    """Poll the log until `predicate(records)` holds."""
    deadline = time.monotonic() + timeout_s
    while True:
        records = [r for r in await store.read_all() if r.env is not None]
        if predicate(records):
            return records
        if time.monotonic() > deadline:
            types = [r.env.type for r in records]
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; log holds {types}")
        await asyncio.sleep(0.3)


def of_type(records: list[Record], name: str) -> list[Record]:
    return [r for r in records if r.env is not None and r.env.type == name]


__all__ = ["Services", "free_port", "of_type", "wait_for"]
