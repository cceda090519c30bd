"""The event log on NATS JetStream: append-only, hash-chained, optimistic per aggregate.

Every event goes to the subject ``asi.events.<aggregate_id>.<EventType>`` of one stream, so an
aggregate's (a run's, an architecture's) events are ``asi.events.<aggregate_id>.*`` and, the type
being last, a server with per-service permissions (:mod:`services.runtime.natsauth`) lets each
service publish only the event types it owns. An append links to the last valid event of the
whole stream (guarded by ``Nats-Expected-Last-Sequence``, so the chain is a single line even with
many writers) and states the aggregate's last sequence (``Nats-Expected-Last-Subject-Sequence``
over its subjects), so a writer who decided on stale state loses and must decide again.

Every reader classifies the stream's messages in order (`ChainState`): one that is not an
envelope, is oversized, has an unknown type or a hash that does not match, or does not link
to the chain's head (a replayed or forged event) is no part of the chain. `follow` records it
as one `EventRejected` event and skips it; no projection ever sees it.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import nats
import nats.errors
from google.protobuf.message import Message
from nats.aio.client import Client
from nats.js import api
from nats.js.errors import APIError, BadRequestError, NotFoundError

from services.pb import events_pb2
from services.runtime import envelope, metrics
from services.runtime.log import get_logger

EVENTS_STREAM = "ASI_EVENTS"
EVENTS_SUBJECT_ROOT = "asi.events"
JOBS_STREAM = "ASI_JOBS"
JOBS_SUBJECT = "asi.jobs.train"
REJECTIONS_AGGREGATE = "rejections"
# Conflicts on expected sequences: 10071 "wrong last sequence"; 10164 on some versions.
CONFLICT_CODES = {10071, 10164}
STREAM_EXISTS_CODE = 10058
READ_BATCH = 1000  # messages per round trip when reading a stretch of the log
BATCH_FROM = 16  # a stretch longer than this is read in batches; a shorter one message by message
READER_IDLE_S = 30.0  # the server drops a batch reader's consumer after this long unused
_AGGREGATE_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_TRANSIENT = (asyncio.TimeoutError, nats.errors.TimeoutError, nats.errors.NoRespondersError,
              nats.errors.ConnectionReconnectingError, nats.errors.ConnectionClosedError)


class EventTooLarge(ValueError):
    """An event whose sealed envelope exceeds `envelope.MAX_EVENT_BYTES`: readers would reject it."""


class ConcurrencyError(RuntimeError):
    """The aggregate changed since the caller read it; re-read and decide again."""

    def __init__(self, aggregate_id: str, expected: int, actual: int) -> None:
        super().__init__(f"{aggregate_id}: expected version {expected}, found {actual}")
        self.aggregate_id, self.expected, self.actual = aggregate_id, expected, actual


def aggregate_subjects(aggregate_id: str) -> str:
    """The subjects of every event of one aggregate."""
    if not _AGGREGATE_ID.match(aggregate_id):
        raise ValueError(f"aggregate id {aggregate_id!r} must match {_AGGREGATE_ID.pattern}")
    return f"{EVENTS_SUBJECT_ROOT}.{aggregate_id}.*"


def subject_of(aggregate_id: str, event_type: str) -> str:
    return aggregate_subjects(aggregate_id).removesuffix("*") + event_type


def _aggregate_of(subject: str) -> str:
    """The aggregate a subject names ("" for none): whose version guard a message's arrival moves."""
    parts = subject.split(".")
    return parts[2] if len(parts) in (3, 4) and subject.startswith(EVENTS_SUBJECT_ROOT + ".") else ""


@dataclass(frozen=True)
class Record:
    """One message of the event stream: a valid event, or the reason it is not one."""

    stream_seq: int
    subject: str
    env: events_pb2.Envelope | None
    event: Message | None
    error: str = ""
    raw: bytes = b""


EventHandler = Callable[[Record], Awaitable[None]]


@dataclass
class ChainState:
    """What a store has verified of the log, message by message in stream order.

    A message joins the chain only if it decodes and links to the chain's head (the next
    sequence, the head's hash) on the subject of its own aggregate and type. So a replayed old event, whose
    bytes and hash are intact, is rejected like garbage, and the next append links past it.
    """

    verified_seq: int = 0  # stream sequence of the last message classified
    head_sequence: int = 0
    head_hash: str = envelope.GENESIS
    versions: dict[str, int] = field(default_factory=dict)  # aggregate id -> its last version
    aggregate_seqs: dict[str, int] = field(default_factory=dict)  # aggregate -> stream seq of its last message
    rejected: dict[int, str] = field(default_factory=dict)  # stream seq -> why it is not in the chain
    # Rejections already recorded, so a re-read beyond the duplicate window records none twice.
    recorded_rejections: set[str] = field(default_factory=set)

    def admit(self, record: Record) -> Record:
        """Classify the message after `verified_seq`: the record as given, or as rejected."""
        self.verified_seq = record.stream_seq
        self.aggregate_seqs[_aggregate_of(record.subject)] = record.stream_seq
        env = record.env
        reason = record.error
        if env is not None:
            if env.sequence != self.head_sequence + 1 or env.prev_hash != self.head_hash:
                reason = (f"event {env.event_id} claims chain sequence {env.sequence} after "
                          f"{env.prev_hash[:12]}, the chain's head is {self.head_sequence} "
                          f"({self.head_hash[:12]}): replayed or forged")
            elif record.subject not in (f"{EVENTS_SUBJECT_ROOT}.{env.aggregate_id}.{env.type}",
                                        # A log written before types ended the subjects: only the
                                        # operator may publish such a subject on a server with roles.
                                        f"{EVENTS_SUBJECT_ROOT}.{env.aggregate_id}"):
                reason = (f"{env.type} {env.event_id} of aggregate {env.aggregate_id!r} arrived on "
                          f"{record.subject}")
        if reason:
            self.rejected[record.stream_seq] = reason
            return Record(record.stream_seq, record.subject, None, None, reason, record.raw)
        assert env is not None
        self.head_sequence, self.head_hash = env.sequence, env.hash
        self.versions[env.aggregate_id] = env.aggregate_version
        if env.type == "EventRejected":
            self.recorded_rejections.add(env.event_id)
        return record


def redacted(url: str) -> str:
    """`url` without the password it may carry (nats://user:password@host:port)."""
    scheme, sep, rest = url.rpartition("://")
    userinfo, at, host = rest.rpartition("@")
    return f"{scheme}{sep}{userinfo.partition(':')[0]}:***@{host}" if at else url


async def connect(url: str, service: str, closing: asyncio.Event | None = None, *, user: str = "",
                  password: str = "") -> Client:
    """A connection that reconnects forever; `closing` silences the disconnect of a deliberate close.
    Credentials come as `user`/`password` or inside `url`; neither is ever logged."""
    log = get_logger()
    url_seen = redacted(url)

    async def disconnected() -> None:
        if closing is None or not closing.is_set():
            log.warning("nats.disconnected", url=url_seen)

    async def reconnected() -> None:
        log.info("nats.reconnected", url=url_seen)

    async def error(exc: Exception) -> None:
        log.warning("nats.error", error=str(exc))

    return await nats.connect(
        url, name=service, user=user or None, password=password or None, max_reconnect_attempts=-1,
        reconnect_time_wait=0.5, connect_timeout=5,
        allow_reconnect=True, disconnected_cb=disconnected, reconnected_cb=reconnected, error_cb=error,
    )


def _decoded(stream_seq: int, subject: str, data: bytes) -> Record:
    try:
        env, event = envelope.decode(data)
    except envelope.MalformedEvent as exc:
        return Record(stream_seq, subject, None, None, str(exc), data[:200])
    # The excerpt too: a well-formed event may still be rejected for not linking to the chain.
    return Record(stream_seq, subject, env, event, raw=data[:200])


class EventStore:
    def __init__(self, nc: Client, service: str, closing: asyncio.Event | None = None) -> None:
        self.nc = nc
        self.closing = closing or asyncio.Event()
        self.js = nc.jetstream(timeout=5)
        self.service = service
        self.log = get_logger()
        self.chain = ChainState()
        # One reader of the chain at a time: messages are classified strictly in stream order.
        self._chain_lock = asyncio.Lock()

    @classmethod
    async def open(cls, url: str, service: str, *, user: str = "", password: str = "",
                   duplicate_window_s: float = 3600) -> EventStore:
        closing = asyncio.Event()
        store = cls(await connect(url, service, closing, user=user, password=password), service, closing)
        await store.ensure_streams(duplicate_window_s=duplicate_window_s)
        return store

    async def close(self) -> None:
        # Every publish has been acknowledged by then, so a plain close loses nothing; a drain
        # would wait out the pull subscription's last fetch.
        self.closing.set()
        await self.nc.close()

    async def ensure_streams(self, *, duplicate_window_s: float = 3600) -> None:
        await self._add_stream(api.StreamConfig(
            name=EVENTS_STREAM, subjects=[f"{EVENTS_SUBJECT_ROOT}.>"], storage=api.StorageType.FILE,
            retention=api.RetentionPolicy.LIMITS, deny_delete=True, deny_purge=True,
            duplicate_window=duplicate_window_s,
        ))
        await self._add_stream(api.StreamConfig(
            name=JOBS_STREAM, subjects=["asi.jobs.>"], storage=api.StorageType.FILE,
            retention=api.RetentionPolicy.WORK_QUEUE, duplicate_window=duplicate_window_s,
        ))

    async def _add_stream(self, config: api.StreamConfig) -> None:
        try:
            await self.js.add_stream(config)
        except BadRequestError as exc:
            if exc.err_code != STREAM_EXISTS_CODE:
                raise

    # -- reading ---------------------------------------------------------------------------

    async def last_seq(self) -> int:
        info = await self.js.stream_info(EVENTS_STREAM)
        return info.state.last_seq

    async def read(self, stream_seq: int) -> Record | None:
        """The message at `stream_seq`, or None past the end of the log. A message that is not
        in the chain (malformed, replayed, forged) comes back with `env` None and the reason."""
        async with self._chain_lock:
            await self._verify_through(stream_seq - 1)
            if self.chain.verified_seq < stream_seq - 1:
                return None  # the log ends before it
            try:
                raw = await self.js.get_msg(EVENTS_STREAM, seq=stream_seq)
            except NotFoundError:
                return None
            return self._classified(self._record(raw))

    def _record(self, raw: api.RawStreamMsg) -> Record:
        return _decoded(raw.seq or 0, raw.subject or "", raw.data or b"")

    async def _batches(self, first: int, last: int) -> AsyncIterator[list[Record]]:
        """The messages from stream sequence `first` through `last`, in order, in batches: one
        round trip per batch, through a short-lived consumer of the stream (a gap is skipped)."""
        sub = await self.js.pull_subscribe(
            f"{EVENTS_SUBJECT_ROOT}.>", stream=EVENTS_STREAM,
            config=api.ConsumerConfig(deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=first,
                                      ack_policy=api.AckPolicy.NONE, inactive_threshold=READER_IDLE_S,
                                      mem_storage=True, num_replicas=1))
        try:
            seen = first - 1
            while seen < last:
                messages = await sub.fetch(batch=min(READ_BATCH, last - seen), timeout=5)
                batch = [_decoded(m.metadata.sequence.stream, m.subject, m.data) for m in messages]
                batch = [r for r in batch if r.stream_seq <= last]
                if not batch:
                    return
                seen = batch[-1].stream_seq
                yield batch
        finally:
            await sub.unsubscribe()

    async def _verify_through(self, stream_seq: int) -> None:
        """Classify every message up to `stream_seq` not yet classified (the lock is held): a long
        stretch in batches, a few messages one by one."""
        if stream_seq - self.chain.verified_seq > BATCH_FROM:
            async for batch in self._batches(self.chain.verified_seq + 1, stream_seq):
                for record in batch:
                    self.chain.admit(record)
        while self.chain.verified_seq < stream_seq:
            try:
                raw = await self.js.get_msg(EVENTS_STREAM, seq=self.chain.verified_seq + 1)
            except NotFoundError:
                if self.chain.verified_seq + 1 > await self.last_seq():
                    return  # the end of the log: what comes later is classified when it is read
                self.chain.verified_seq += 1  # a gap: nothing there to classify
                continue
            self.chain.admit(self._record(raw))

    def _classified(self, record: Record) -> Record:
        """The record as the chain has it (the lock is held): admitted or rejected if it comes next,
        else as it was classified before."""
        if record.stream_seq > self.chain.verified_seq:
            return self.chain.admit(record)
        reason = self.chain.rejected.get(record.stream_seq)
        return record if reason is None else Record(record.stream_seq, record.subject, None, None, reason, record.raw)

    async def read_from(self, stream_seq: int, *, limit: int = READ_BATCH) -> list[Record]:
        """Up to `limit` messages from `stream_seq` on, classified, in one round trip where there
        are many; [] at the end of the log."""
        last = min(await self.last_seq(), stream_seq + limit - 1)
        if last < stream_seq:
            return []
        if last - stream_seq < BATCH_FROM:
            records = [await self.read(seq) for seq in range(stream_seq, last + 1)]
            return [r for r in records if r is not None]
        async with self._chain_lock:
            await self._verify_through(stream_seq - 1)
            return [self._classified(r) async for batch in self._batches(stream_seq, last) for r in batch]

    async def read_all(self) -> list[Record]:
        """Every message of the log, classified: valid events, and the rest with their reason."""
        last = await self.last_seq()
        records: list[Record] = []
        while records_read := await self.read_from(records[-1].stream_seq + 1 if records else 1):
            records += records_read
            if records[-1].stream_seq >= last:
                break
        return records

    async def version(self, aggregate_id: str) -> int:
        aggregate_subjects(aggregate_id)  # refuses an id that names no subject
        last = await self.last_seq()
        async with self._chain_lock:
            await self._verify_through(last)
            return self.chain.versions.get(aggregate_id, 0)

    # -- writing ---------------------------------------------------------------------------

    async def append(
        self,
        payload: Message,
        *,
        run_id: str,
        aggregate_id: str,
        expected_version: int | None = None,
        event_id: str | None = None,
        causation_id: str = "",
        correlation_id: str = "",
        deadline_s: float = 300.0,
    ) -> events_pb2.Envelope:
        """Append one event; returns it sealed. Re-appending an event id stores nothing new
        and returns the stored event. Raises ConcurrencyError when `expected_version` is
        given and the aggregate has moved on."""
        env = envelope.build(payload, run_id=run_id, aggregate_id=aggregate_id, service=self.service,
                             event_id=event_id, causation_id=causation_id, correlation_id=correlation_id)
        subject = subject_of(aggregate_id, env.type)
        give_up = time.monotonic() + deadline_s
        attempt = 0
        while True:
            attempt += 1
            # The first attempt trusts the chain as this store last saw it: if others wrote since,
            # the stream's expected-sequence guard refuses the publish and the next attempt reads
            # what they wrote. So the usual append costs one round trip.
            fresh = attempt > 1 or self.chain.verified_seq == 0
            try:
                last = await self.last_seq() if fresh else 0
                async with self._chain_lock:
                    await self._verify_through(last)
                    stream_seq = self.chain.verified_seq
                    head_sequence, head_hash = self.chain.head_sequence, self.chain.head_hash
                    version = self.chain.versions.get(aggregate_id, 0)
                    aggregate_seq = self.chain.aggregate_seqs.get(aggregate_id, 0)
                if expected_version is not None and version != expected_version:
                    if not fresh:
                        continue  # the caller may know a later version than this store has seen
                    raise ConcurrencyError(aggregate_id, expected_version, version)
                envelope.seal(env, sequence=head_sequence + 1, prev_hash=head_hash, aggregate_version=version + 1)
                data = env.SerializeToString(deterministic=True)
                if len(data) > envelope.MAX_EVENT_BYTES:
                    raise EventTooLarge(f"{env.type} {env.event_id} is {len(data)} bytes sealed, over the "
                                        f"limit of {envelope.MAX_EVENT_BYTES}")
                ack = await self.js.publish(subject, data, headers={
                    "Nats-Msg-Id": env.event_id,
                    "Nats-Expected-Last-Sequence": str(stream_seq),
                    "Nats-Expected-Last-Subject-Sequence": str(aggregate_seq),
                    "Nats-Expected-Last-Subject-Sequence-Subject": aggregate_subjects(aggregate_id),
                })
            except APIError as exc:
                if exc.err_code not in CONFLICT_CODES:
                    raise
                if time.monotonic() > give_up:
                    raise
                if fresh:  # lost to another writer even on a fresh view: back off a little
                    await asyncio.sleep(random.uniform(0, 0.01 * min(attempt, 20)))
                continue
            except _TRANSIENT as exc:
                if time.monotonic() > give_up:
                    raise
                self.log.warning("eventstore.append_retry", event_id=env.event_id, error=repr(exc))
                await asyncio.sleep(min(0.1 * attempt, 2.0))
                continue
            metrics.EVENTS_PUBLISHED.labels(self.service, env.type).inc()
            if ack.duplicate:
                stored = await self.read(ack.seq)
                return stored.env if stored and stored.env else env
            async with self._chain_lock:
                if ack.seq == self.chain.verified_seq + 1:  # our own event is the next one: no need to read it
                    self.chain.admit(Record(ack.seq, subject, env, payload, raw=data[:200]))
            return env

    async def reject(self, record: Record, consumer: str) -> None:
        """Record a message that is not in the chain as an EventRejected event (once per message)."""
        metrics.EVENTS_REJECTED.labels(self.service).inc()
        self.log.warning("event.rejected", stream_seq=record.stream_seq, subject=record.subject,
                         reason=record.error)
        rejection_id = envelope.event_id_for("rejected", str(record.stream_seq))
        await self.version(REJECTIONS_AGGREGATE)  # classifies the log to its end, earlier rejections included
        if rejection_id in self.chain.recorded_rejections:
            return
        await self.append(
            events_pb2.EventRejected(subject=record.subject, reason=record.error,
                                     raw_excerpt=record.raw[:200].decode("utf-8", "replace"), consumer=consumer),
            run_id="", aggregate_id=REJECTIONS_AGGREGATE,
            event_id=rejection_id,
        )

    # -- following ---------------------------------------------------------------------------

    async def follow(
        self,
        handle: EventHandler,
        *,
        start_seq: int = 1,
        on_idle: Callable[[], Awaitable[None]] | None = None,
        stop: asyncio.Event | None = None,
        idle_poll_s: float = 1.0,
    ) -> None:
        """Deliver every message from `start_seq` on, in order, forever (until `stop`).

        Reads by sequence (a long stretch in batches through a consumer made for the read), so a
        reconnect or a server restart needs no re-binding; a core
        subscription on the event subjects only wakes the loop early. `on_idle` runs each
        time the reader has caught up with the log. Malformed messages become
        EventRejected events and are skipped, as are events that do not link to the chain.
        """
        wake = asyncio.Event()

        async def wake_up(_msg: object) -> None:
            wake.set()

        sub = await self.nc.subscribe(f"{EVENTS_SUBJECT_ROOT}.>", cb=wake_up)
        seq = start_seq
        try:
            while stop is None or not stop.is_set():
                try:
                    records = await self.read_from(seq)
                except _TRANSIENT:
                    await asyncio.sleep(0.5)
                    continue
                if not records:
                    if on_idle is not None:
                        await on_idle()
                    wake.clear()
                    waiters = [asyncio.ensure_future(wake.wait())]
                    if stop is not None:
                        waiters.append(asyncio.ensure_future(stop.wait()))
                    _, pending = await asyncio.wait(waiters, timeout=idle_poll_s,
                                                    return_when=asyncio.FIRST_COMPLETED)
                    for task in pending:
                        task.cancel()
                    continue
                for record in records:
                    if stop is not None and stop.is_set():
                        return
                    if record.env is None:
                        await self.reject(record, consumer=self.service)
                    else:
                        metrics.EVENTS_CONSUMED.labels(self.service, record.env.type).inc()
                        await handle(record)
                    seq = record.stream_seq + 1
        finally:
            try:
                await sub.unsubscribe()
            except nats.errors.Error:
                pass
