"""The engineer worker: pulls training jobs, runs each candidate in the sandbox (probes,
training, evaluation), reports progress and the result as events, and acks.

Any number of workers share the queue's one durable consumer. A heartbeat
(`in_progress`) keeps a long job leased; a worker that dies stops the heartbeat and the
job is redelivered to another; after the delivery limit the job becomes a dead letter,
reported as a TrainingFailed event of kind ``dead_letter`` by the worker that receives
the one delivery past the limit.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import traceback
from typing import Any

import nats.errors
from nats.aio.msg import Msg

from services.engineer.harness import run_experiment
from services.engineer.sandbox_child import DISK_FULL_ERRNOS
from services.pb import events_pb2, jobs_pb2
from services.runtime import jobs, metrics
from services.runtime.app import EventService, main
from services.runtime.envelope import event_id_for
from services.runtime.eventstore import REJECTIONS_AGGREGATE

PROGRESS_EVERY_S = 2.0  # at most one TrainingProgress event per job this often


def exhaustion_failure(exc: OSError | MemoryError) -> dict[str, Any]:
    """The result of an experiment whose engineer ran out of disk or memory; re-raises anything else."""
    if isinstance(exc, MemoryError):
        kind = "memory"
    elif exc.errno in DISK_FULL_ERRNOS:
        kind = "disk_full"
    else:
        raise exc
    return {"ok": False, "checks": {}, "failure": {
        "kind": kind, "message": f"the engineer, outside the sandbox: {type(exc).__name__}: {exc}",
        "traceback": "".join(traceback.format_exception(exc))}}


class EngineerWorker(EventService):
    name = "engineer"

    async def run(self, stop: asyncio.Event) -> None:
        js = self.store.js
        if not await jobs.ensure_consumer(js, ack_wait_s=self.settings.job_ack_wait_s,
                                          max_deliver=self.settings.job_max_deliver):
            self.log.warning("engineer.consumer_kept", reason="existing consumer has other settings")
        subscription = await jobs.pull(js)
        self.caught_up.set()
        self.log.info("engineer.ready", worker=self.settings.worker_id)
        while not stop.is_set():
            metrics.QUEUE_DEPTH.set(await jobs.depth(js))
            try:
                messages = await subscription.fetch(1, timeout=1.0)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            except nats.errors.Error as exc:
                # After a server restart a pull subscription may stop receiving: re-bind it.
                self.log.warning("engineer.rebind", error=repr(exc))
                await asyncio.sleep(0.5)
                subscription = await jobs.pull(js)
                continue
            for message in messages:
                job = asyncio.create_task(self._process(message))
                stopping = asyncio.create_task(stop.wait())
                await asyncio.wait({job, stopping}, return_when=asyncio.FIRST_COMPLETED)
                stopping.cancel()
                if not job.done():
                    # The training thread cannot be interrupted; leave at once instead. The job
                    # is not acknowledged, so another worker gets it, and the sandbox child dies
                    # with this process (its parent-death signal).
                    self.log.warning("engineer.stopped_mid_job", worker=self.settings.worker_id)
                    os._exit(0)
                job.result()

    async def _process(self, message: Msg) -> None:
        try:
            job = jobs_pb2.TrainingJob.FromString(message.data)
            if not job.job_id or not job.arch_id or not job.code:
                raise ValueError("job lacks job_id, arch_id or code")
        except Exception as exc:  # any undecodable job is reported, acknowledged and dropped
            await self.store.append(
                events_pb2.EventRejected(subject=message.subject, reason=f"malformed training job: {exc}",
                                         raw_excerpt=message.data[:200].decode("utf-8", "replace"),
                                         consumer=self.name),
                run_id="", aggregate_id=REJECTIONS_AGGREGATE,
                event_id=event_id_for("rejected-job", str(message.metadata.sequence.stream)))
            await message.ack()
            return
        delivery = message.metadata.num_delivered
        common = {"run_id": job.run_id, "aggregate_id": job.arch_id, "correlation_id": job.correlation_id}
        if delivery > self.settings.job_max_deliver:
            await self._dead_letter(job, message, common)
            return
        started = await self.store.append(
            events_pb2.TrainingStarted(arch_id=job.arch_id, job_id=job.job_id, worker=self.settings.worker_id,
                                       delivery=delivery),
            event_id=event_id_for("started", job.job_id, str(delivery)), causation_id=job.causation_id, **common)
        self.log.info("training.started", run_id=job.run_id, arch_id=job.arch_id, job_id=job.job_id,
                      delivery=delivery)

        loop = asyncio.get_running_loop()
        last_progress = [0.0]

        def on_progress(progress: dict[str, Any]) -> None:  # called from the harness thread
            now = time.monotonic()
            if now - last_progress[0] < PROGRESS_EVERY_S and progress["step"] != progress["steps"]:
                return
            last_progress[0] = now
            event = events_pb2.TrainingProgress(arch_id=job.arch_id, job_id=job.job_id, step=progress["step"],
                                                steps=progress["steps"], train_loss=progress["train_loss"],
                                                tokens_per_s=progress["tokens_per_s"])
            asyncio.run_coroutine_threadsafe(
                self.store.append(event, causation_id=started.event_id, **common), loop)

        async def heartbeat() -> None:
            while True:
                await asyncio.sleep(max(self.settings.job_ack_wait_s / 3, 0.2))
                await message.in_progress()

        beating = asyncio.create_task(heartbeat())
        began = time.monotonic()
        try:
            result = await asyncio.to_thread(run_experiment, job.code, job.profile, job.seed,
                                             corpus=job.corpus or None, on_progress=on_progress)
        except (OSError, MemoryError) as exc:
            # The engineer's own side ran out (the data dir's disk while storing the corpus or the
            # checkpoint, or this process's memory): the experiment fails with that kind and the
            # worker lives on. Any other error is a bug: it ends the worker, and the job is redelivered.
            result = exhaustion_failure(exc)
        finally:
            beating.cancel()
        metrics.TRAINING_SECONDS.observe(time.monotonic() - began)
        checks = json.dumps(result.get("checks", {}), sort_keys=True, default=str)
        if result["ok"]:
            outcome: Any = events_pb2.TrainingFinished(
                arch_id=job.arch_id, job_id=job.job_id, val_loss=result["val_loss"],
                benchmarks=result["benchmarks"], benchmark_mean=result["benchmark_mean"], params=result["params"],
                tokens_per_s=result["tokens_per_s"], train_seconds=result["train_seconds"],
                flops_per_token=result["flops_per_token"], checkpoint=result.get("checkpoint", ""), checks_json=checks,
                worker=self.settings.worker_id)
        else:
            failure = result["failure"]
            outcome = events_pb2.TrainingFailed(
                arch_id=job.arch_id, job_id=job.job_id, kind=failure["kind"], message=failure["message"],
                traceback=failure.get("traceback", "")[-4000:], checks_json=checks, worker=self.settings.worker_id)
        await self.store.append(outcome, event_id=event_id_for("trained", job.job_id),
                                causation_id=started.event_id, **common)
        await message.ack()
        self.log.info("training.done", run_id=job.run_id, arch_id=job.arch_id, ok=result["ok"],
                      val_loss=result.get("val_loss"), failure=result.get("failure", {}).get("kind"))

    async def _dead_letter(self, job: jobs_pb2.TrainingJob, message: Msg, common: dict[str, str]) -> None:
        await self.store.append(
            events_pb2.TrainingFailed(arch_id=job.arch_id, job_id=job.job_id, kind="dead_letter",
                                      message=f"job {job.job_id} was delivered {self.settings.job_max_deliver} "
                                              "times without finishing (its workers died or stalled)",
                                      worker=self.settings.worker_id),
            event_id=event_id_for("trained", job.job_id), causation_id=job.causation_id, **common)
        await message.term()  # terminal: the work queue drops it
        self.log.warning("training.dead_letter", run_id=job.run_id, arch_id=job.arch_id, job_id=job.job_id)


if __name__ == "__main__":
    main(EngineerWorker)
