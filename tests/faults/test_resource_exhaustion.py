"""Fault case 6: a full disk and an exhausted memory inside training jobs, with a real engineer
worker process, its real sandbox and a real nats-server.

The disks are small tmpfs mounted for the test: one under the worker's TMPDIR (where each
sandbox's scratch directory, and so the checkpoint the child writes, lives) and one as its data
dir (where the corpus splits and the stored checkpoints go). Each job's outcome is awaited
before the next disk is grown, so nothing depends on timing.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from nats.js.errors import NotFoundError

from services.pb import events_pb2, jobs_pb2
from services.researcher.mind import EvolveMind
from services.runtime import envelope, jobs
from services.runtime.eventstore import JOBS_STREAM, EventStore, Record
from services.runtime.natsserver import EmbeddedNats
from tests.engineer import mixers
from tests.loop.conftest import Services, of_type, wait_for

pytestmark = [
    pytest.mark.slow,  # four tiny experiments through one worker: about a minute
    pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root"),
]

HEALTHY_CODE = EvolveMind(0).seed_proposal().code
# Passes every probe (they never run a batch of 8 with gradients), then asks for 4 TiB at the
# first training step: past the tiny profile's 6 GiB address-space limit, so nothing is touched.
OOM_IN_TRAINING = mixers.mixer(
    "if torch.is_grad_enabled() and x.shape[0] == 8:\n"
    "    self.hoard = torch.empty(1 << 40)\n"
    "return self.proj(x)"
)


class SmallDisk:
    """A tmpfs of a given size at `path`, grown on demand, unmounted at the end."""

    def __init__(self, path: Path, size: str) -> None:
        self.path = path
        path.mkdir(parents=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)

    def grow(self, size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(self.path)], check=True)

    def unmount(self) -> None:
        # Lazy: a killed sandbox's working directory must not keep the test from cleaning up.
        subprocess.run(["umount", "-l", str(self.path)], check=True)


@pytest.fixture
def disks(tmp_path: Path) -> Iterator[tuple[SmallDisk, SmallDisk]]:
    probe = tmp_path / "probe"
    probe.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)]).returncode != 0:
        pytest.skip("this machine refuses to mount a tmpfs")
    subprocess.run(["umount", str(probe)], check=True)
    # Room for the request and the candidate, not for a checkpoint (the tiny model's is ~1 MB).
    scratch = SmallDisk(tmp_path / "scratch-disk", "128k")
    # Room for the small corpus's splits, not for a checkpoint.
    data = SmallDisk(tmp_path / "data-disk", "256k")
    yield scratch, data
    scratch.unmount()
    data.unmount()


def job(n: int, code: str, corpus: Path) -> jobs_pb2.TrainingJob:
    return jobs_pb2.TrainingJob(job_id=f"job-{n}", run_id="run-x", arch_id=f"arch-{n}", code=code,
                                profile="tiny", seed=0, correlation_id="c", corpus=str(corpus))


async def worker_waiting(store: EventStore, timeout_s: float = 60) -> None:
    """Until the worker has created the shared consumer and waits on it."""
    for _ in range(int(timeout_s / 0.2)):
        try:
            if ((await store.js.consumer_info(JOBS_STREAM, jobs.CONSUMER)).num_waiting or 0) >= 1:
                return
        except NotFoundError:
            pass
        await asyncio.sleep(0.2)
    raise AssertionError("the worker did not come up")


async def outcome_of(store: EventStore, job_id: str) -> tuple[str, events_pb2.TrainingFailed | None]:
    """The type of the job's terminal event, and the TrainingFailed itself if it failed."""
    def ended(records: list[Record]) -> bool:
        return any(envelope.unpack(r.env).job_id == job_id
                   for r in of_type(records, "TrainingFinished") + of_type(records, "TrainingFailed"))

    records = await wait_for(store, ended, 240, f"{job_id} to end")
    for record in of_type(records, "TrainingFinished") + of_type(records, "TrainingFailed"):
        event = envelope.unpack(record.env)
        if event.job_id == job_id:
            return record.env.type, event if isinstance(event, events_pb2.TrainingFailed) else None
    raise AssertionError("unreachable: `ended` found it")


async def test_a_full_disk_and_an_exhausted_memory_fail_their_jobs_and_the_worker_lives_on(
        store: EventStore, nats_server: EmbeddedNats, tmp_path: Path,
        disks: tuple[SmallDisk, SmallDisk]) -> None:
    scratch_disk, data_disk = disks
    corpus = tmp_path / "corpus.py"
    corpus.write_text(Path(asyncio.__file__).read_text() * 8)  # ~40 KB of Python: splits fit the data disk
    services = Services(nats_server, tmp_path)
    try:
        worker = services.start("engineer", ASI_WORKER_ID="worker-a", ASI_DATA_DIR=str(data_disk.path),
                                TMPDIR=str(scratch_disk.path))
        await worker_waiting(store)

        # 1. The sandbox's scratch disk is full when the child writes the checkpoint.
        await jobs.submit(store.js, job(1, HEALTHY_CODE, corpus))
        kind, failed = await outcome_of(store, "job-1")
        assert kind == "TrainingFailed" and failed is not None
        assert failed.kind == "disk_full", failed.message
        assert "checkpoint" in failed.message and "No space left on device" in failed.message

        # 2. The data dir's disk is full when the worker stores the checkpoint.
        scratch_disk.grow("64m")
        await jobs.submit(store.js, job(2, HEALTHY_CODE, corpus))
        kind, failed = await outcome_of(store, "job-2")
        assert kind == "TrainingFailed" and failed is not None
        assert failed.kind == "disk_full", failed.message
        assert "outside the sandbox" in failed.message and "No space left on device" in failed.message

        # 3. The candidate exhausts its memory at the first training step.
        await jobs.submit(store.js, job(3, OOM_IN_TRAINING, corpus))
        kind, failed = await outcome_of(store, "job-3")
        assert kind == "TrainingFailed" and failed is not None
        assert failed.kind == "memory", failed.message
        assert failed.message.startswith("train:")

        # 4. With room again, the same worker process trains a job to the end.
        data_disk.grow("64m")
        await jobs.submit(store.js, job(4, HEALTHY_CODE, corpus))
        kind, _ = await outcome_of(store, "job-4")
        assert kind == "TrainingFinished"
        assert worker.poll() is None, "the worker died"
        records = [r for r in await store.read_all() if r.env]
        started = [envelope.unpack(r.env) for r in of_type(records, "TrainingStarted")]
        assert [(s.job_id, s.worker, s.delivery) for s in started] == [
            (f"job-{n}", "worker-a", 1) for n in range(1, 5)]  # each ran once: none was redelivered
        info = await store.js.consumer_info(JOBS_STREAM, jobs.CONSUMER)
        assert info.num_ack_pending == 0 and info.num_pending == 0
    finally:
        services.stop_all()
