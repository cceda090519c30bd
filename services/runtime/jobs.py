"""The training work queue: a work-queue stream with one durable pull consumer shared by
all engineer workers (each job goes to exactly one of them at a time)."""

from __future__ import annotations

import nats.errors
from nats.js import JetStreamContext, api
from nats.js.errors import BadRequestError

from services.pb import jobs_pb2
from services.runtime.eventstore import JOBS_STREAM, JOBS_SUBJECT

CONSUMER = "engineers"


async def submit(js: JetStreamContext, job: jobs_pb2.TrainingJob) -> None:
    """Enqueue a job; submitting the same job id again within the duplicate window is a no-op."""
    await js.publish(JOBS_SUBJECT, job.SerializeToString(), headers={"Nats-Msg-Id": job.job_id})


async def ensure_consumer(js: JetStreamContext, *, ack_wait_s: float, max_deliver: int) -> bool:
    """Create the shared consumer; False when one with other settings already exists (it is kept,
    since deleting it would drop the leases of jobs in flight).

    The server may deliver a job once more than `max_deliver`: the worker that receives that
    extra delivery reports the job as a dead letter instead of running it. (The server's
    max-deliveries advisory reaches only workers subscribed at that instant, so a queue whose
    workers all died would lose it.)
    """
    config = api.ConsumerConfig(
        durable_name=CONSUMER, ack_policy=api.AckPolicy.EXPLICIT, ack_wait=ack_wait_s,
        max_deliver=max_deliver + 1, filter_subject=JOBS_SUBJECT, max_ack_pending=1000,
    )
    try:
        await js.add_consumer(JOBS_STREAM, config)
    except BadRequestError:
        return False
    return True


async def pull(js: JetStreamContext) -> JetStreamContext.PullSubscription:
    return await js.pull_subscribe(JOBS_SUBJECT, durable=CONSUMER, stream=JOBS_STREAM)


async def depth(js: JetStreamContext) -> int:
    """Jobs waiting for a worker."""
    try:
        info = await js.consumer_info(JOBS_STREAM, CONSUMER)
    except (nats.errors.Error, TimeoutError):
        return -1
    return info.num_pending or 0
