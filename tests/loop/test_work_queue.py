"""Training jobs on the work queue, with real engineer worker processes: one job is done
once even when its worker dies, two workers share a queue, and a job that exhausts its
deliveries becomes a dead-letter event."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from nats.js.errors import NotFoundError

from services.pb import jobs_pb2
from services.researcher.mind import EvolveMind
from services.runtime import envelope, jobs
from services.runtime.eventstore import JOBS_STREAM, EventStore
from tests.loop.conftest import Services, of_type, wait_for

SEED_CODE = EvolveMind(0).seed_proposal().code


def job(n: int) -> jobs_pb2.TrainingJob:
    return jobs_pb2.TrainingJob(job_id=f"job-{n}", run_id="run-q", arch_id=f"arch-{n}", code=SEED_CODE,
                                profile="tiny", seed=0, correlation_id="c")


def orphaned_sandboxes() -> list[str]:
    """Sandbox children whose worker is gone (re-parented to init)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes()
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if b"sandbox_child" in cmdline and ppid == 1:
            found.append(proc.name)
    return found


def workers_waiting(count: int):  # type: ignore[no-untyped-def]
    async def check(store: EventStore) -> bool:
        info = await store.js.consumer_info(JOBS_STREAM, jobs.CONSUMER)
        return (info.num_waiting or 0) >= count
    return check


async def wait_until(check, store: EventStore, timeout_s: float = 60) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(timeout_s / 0.2)):
        try:
            if await check(store):
                return
        except NotFoundError:
            pass
        await asyncio.sleep(0.2)
    raise AssertionError("workers did not come up")


async def test_a_killed_workers_job_is_redelivered_and_finished_once(store: EventStore, services: Services) -> None:
    first = services.start("engineer", ASI_WORKER_ID="worker-a", ASI_JOB_ACK_WAIT_S="2")
    await wait_until(workers_waiting(1), store)
    await jobs.submit(store.js, job(1))
    await wait_for(store, lambda rs: len(of_type(rs, "TrainingStarted")) == 1, 60, "worker-a to start")
    services.kill(first)
    await asyncio.sleep(1)
    assert orphaned_sandboxes() == [], "the killed worker's training outlived it"
    services.start("engineer", ASI_WORKER_ID="worker-b", ASI_JOB_ACK_WAIT_S="2")
    records = await wait_for(store, lambda rs: of_type(rs, "TrainingFinished") or of_type(rs, "TrainingFailed"),
                             240, "the job to finish")
    await asyncio.sleep(5)  # longer than the ack wait: a third delivery would show up now
    records = [r for r in await store.read_all() if r.env]
    started = [envelope.unpack(r.env) for r in of_type(records, "TrainingStarted")]
    assert [(s.worker, s.delivery) for s in started] == [("worker-a", 1), ("worker-b", 2)]
    finished = [envelope.unpack(r.env) for r in of_type(records, "TrainingFinished")]
    assert len(finished) == 1 and not of_type(records, "TrainingFailed")
    assert finished[0].worker == "worker-b" and finished[0].val_loss > 0


async def test_two_workers_share_the_queue_without_doing_a_job_twice(store: EventStore, services: Services) -> None:
    # A lease far longer than the test: a held worker's job must not be redelivered while it is held.
    workers = {name: services.start("engineer", ASI_WORKER_ID=name, ASI_JOB_ACK_WAIT_S="600")
               for name in ("worker-a", "worker-b")}
    await wait_until(workers_waiting(2), store)
    await jobs.submit(store.js, job(0))
    records = await wait_for(store, lambda rs: len(of_type(rs, "TrainingStarted")) == 1, 60, "the first job to start")
    first = envelope.unpack(of_type(records, "TrainingStarted")[0].env).worker
    # Hold the worker that took the first job (its sandbox child keeps training) until the second
    # job has started: only the other worker can take it, however fast the first job trains.
    os.kill(workers[first].pid, signal.SIGSTOP)
    try:
        await jobs.submit(store.js, job(1))
        records = await wait_for(store, lambda rs: len(of_type(rs, "TrainingStarted")) == 2, 60,
                                 "the second job to start")
    finally:
        os.kill(workers[first].pid, signal.SIGCONT)
    await jobs.submit(store.js, job(2))
    await jobs.submit(store.js, job(0))  # a re-submitted job id is not a second job
    records = await wait_for(store, lambda rs: len(of_type(rs, "TrainingFinished")) >= 3, 300, "three jobs")
    finished = [envelope.unpack(r.env) for r in of_type(records, "TrainingFinished")]
    assert sorted(f.job_id for f in finished) == ["job-0", "job-1", "job-2"]
    assert {f.worker for f in finished} == {"worker-a", "worker-b"}
    by_job = {f.job_id: f.worker for f in finished}
    assert by_job["job-0"] == first and by_job["job-1"] != first
    started = [envelope.unpack(r.env) for r in of_type(records, "TrainingStarted")]
    assert sorted(s.job_id for s in started) == ["job-0", "job-1", "job-2"]


async def test_a_job_out_of_deliveries_becomes_a_dead_letter_event(store: EventStore, services: Services) -> None:
    settings = {"ASI_JOB_ACK_WAIT_S": "1", "ASI_JOB_MAX_DELIVER": "1"}
    doomed = services.start("engineer", ASI_WORKER_ID="worker-a", **settings)
    await wait_until(workers_waiting(1), store)
    await jobs.submit(store.js, job(7))
    await wait_for(store, lambda rs: len(of_type(rs, "TrainingStarted")) == 1, 60, "worker-a to start")
    services.kill(doomed)
    services.start("engineer", ASI_WORKER_ID="worker-b", **settings)
    records = await wait_for(store, lambda rs: of_type(rs, "TrainingFailed"), 60, "the dead letter")
    failed = envelope.unpack(of_type(records, "TrainingFailed")[0].env)
    assert failed.kind == "dead_letter" and failed.job_id == "job-7"
    assert "delivered 1 times" in failed.message
    info = await store.js.stream_info(JOBS_STREAM)
    assert info.state.messages == 0  # the dead job left the queue


async def test_a_malformed_job_is_reported_acknowledged_and_skipped(store: EventStore, services: Services) -> None:
    services.start("engineer", ASI_WORKER_ID="worker-a")
    await wait_until(workers_waiting(1), store)
    await store.js.publish("asi.jobs.train", b"\x00\x01 definitely not a job", headers={"Nats-Msg-Id": "junk"})
    records = await wait_for(store, lambda rs: of_type(rs, "EventRejected"), 30, "the rejection")
    rejected = envelope.unpack(of_type(records, "EventRejected")[0].env)
    assert "malformed training job" in rejected.reason
    await asyncio.sleep(1)
    info = await store.js.stream_info(JOBS_STREAM)
    assert info.state.messages == 0


async def test_the_researcher_creates_the_jobs_consumer_before_any_engineer_runs(store: EventStore,
                                                                                  services: Services) -> None:
    # An autoscaler at zero engineers reads the queue's pending count from this consumer.
    services.start("researcher", ASI_JOB_ACK_WAIT_S="45", ASI_JOB_MAX_DELIVER="4")
    for _ in range(240):
        try:
            info = await store.js.consumer_info(JOBS_STREAM, jobs.CONSUMER)
            break
        except NotFoundError:
            await asyncio.sleep(0.5)
    else:
        raise AssertionError("the researcher never created the jobs consumer")
    assert info.config.ack_wait == 45 and info.config.max_deliver == 5  # one past the limit: the dead letter
