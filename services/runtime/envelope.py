"""Event envelopes: building, sealing into the hash chain, and the audit-file format.

The chain: ``hash = sha256(prev_hash || deterministic bytes of the envelope with hash
empty)``. ``sequence`` is the position in the chain (1-based); the first event links to
``GENESIS``. An exported log is one canonical JSON object per line, so a changed byte
either changes the envelope (the hash no longer matches) or breaks the canonical form, and
it ends with a trailer line that seals the count and the head hash, so a file cut after
any event (even at a line boundary) no longer verifies.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from services import __version__
from services.pb import events_pb2

GENESIS = "0" * 64
TRAILER_KEY = "asi_arch_export"  # the last line of an export: {"asi_arch_export": {"events": N, "head": H}}
TYPE_URL_PREFIX = "asi-arch/"
# NATS's default max_payload (the embedded server's and the chart's). Readers refuse larger
# messages, which only a server configured for more would carry, before parsing them; it is one
# constant, not a setting, because every reader must agree on which messages are in the chain.
MAX_EVENT_BYTES = 1024 * 1024

# Every payload message of events.proto; the envelope's `type` is the message name.
EVENT_TYPES: dict[str, type[Message]] = {
    name: getattr(events_pb2, name)
    for name in events_pb2.DESCRIPTOR.message_types_by_name
    if name not in {"Envelope", "Producer", "Citation", "SeedArchitecture"}
}

# Names for deterministic event ids (uuid5), so a re-done reaction republishes the same id.
EVENT_ID_NAMESPACE = uuid.UUID("6f1d2c1e-5b7a-4f8e-9b0c-a5a1a2c3d4e5")


class MalformedEvent(ValueError):
    """Bytes on an event subject that are not a valid envelope."""


def event_id_for(*parts: str) -> str:
    """A stable event id derived from what caused the event."""
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, "/".join(parts)))


def build(
    payload: Message,
    *,
    run_id: str,
    aggregate_id: str,
    service: str,
    event_id: str | None = None,
    causation_id: str = "",
    correlation_id: str = "",
) -> events_pb2.Envelope:
    """An unsealed envelope: no version, sequence or hash yet (the store assigns them)."""
    name = payload.DESCRIPTOR.name
    if name not in EVENT_TYPES:
        raise TypeError(f"{name} is not an event type of events.proto")
    env = events_pb2.Envelope(
        event_id=event_id or str(uuid.uuid4()),
        run_id=run_id,
        type=name,
        aggregate_id=aggregate_id,
        causation_id=causation_id,
        correlation_id=correlation_id,
        producer=events_pb2.Producer(service=service, version=__version__),
    )
    env.timestamp.GetCurrentTime()
    env.payload.Pack(payload, type_url_prefix=TYPE_URL_PREFIX, deterministic=True)
    return env


def compute_hash(env: events_pb2.Envelope) -> str:
    unsealed = events_pb2.Envelope()
    unsealed.CopyFrom(env)
    unsealed.hash = ""
    body = unsealed.SerializeToString(deterministic=True)
    return hashlib.sha256(env.prev_hash.encode() + body).hexdigest()


def seal(env: events_pb2.Envelope, *, sequence: int, prev_hash: str, aggregate_version: int) -> None:
    env.sequence = sequence
    env.prev_hash = prev_hash
    env.aggregate_version = aggregate_version
    env.hash = compute_hash(env)


def unpack(env: events_pb2.Envelope) -> Message:
    """The payload as its own message type."""
    cls = EVENT_TYPES.get(env.type)
    if cls is None:
        raise MalformedEvent(f"unknown event type {env.type!r}")
    payload = cls()
    if not env.payload.Unpack(payload):
        raise MalformedEvent(f"payload of event {env.event_id} is not a {env.type}")
    return payload


def decode(data: bytes) -> tuple[events_pb2.Envelope, Message]:
    """Parse and validate bytes from the log; raises MalformedEvent with the reason."""
    if len(data) > MAX_EVENT_BYTES:
        raise MalformedEvent(f"oversized: {len(data)} bytes, over the limit of {MAX_EVENT_BYTES}")
    env = events_pb2.Envelope()
    try:
        env.ParseFromString(data)
    except DecodeError as exc:
        raise MalformedEvent(f"not a protobuf envelope: {exc}") from exc
    if not env.event_id or not env.type or not env.hash:
        raise MalformedEvent("envelope lacks event_id, type or hash")
    if compute_hash(env) != env.hash:
        raise MalformedEvent(f"hash of event {env.event_id} does not match its content")
    return env, unpack(env)


def to_line(env: events_pb2.Envelope) -> str:
    """The canonical audit-file line of one event."""
    as_dict = json_format.MessageToDict(env, preserving_proto_field_name=True)
    return json.dumps(as_dict, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def from_line(line: str) -> events_pb2.Envelope:
    try:
        as_dict = json.loads(line)
        env = events_pb2.Envelope()
        json_format.ParseDict(as_dict, env)
    except (ValueError, json_format.ParseError) as exc:
        raise MalformedEvent(f"not a JSON envelope: {exc}") from exc
    # json_format packs Any with unordered maps; re-pack so the bytes match the hashed ones.
    env.payload.Pack(unpack(env), type_url_prefix=TYPE_URL_PREFIX, deterministic=True)
    if to_line(env) != line:
        raise MalformedEvent("line is not in canonical form (edited by hand?)")
    return env


def trailer_line(events: int, head: str) -> str:
    return json.dumps({TRAILER_KEY: {"events": events, "head": head}}, sort_keys=True, separators=(",", ":"))


def parse_trailer(line: str) -> tuple[int, str] | None:
    """(event count, head hash) if ``line`` is an export trailer, else None."""
    if TRAILER_KEY not in line:
        return None
    try:
        sealed = json.loads(line)[TRAILER_KEY]
        return int(sealed["events"]), str(sealed["head"])
    except (ValueError, KeyError, TypeError):
        return None


def export_lines(envs: Iterable[events_pb2.Envelope]) -> Iterator[str]:
    """The audit file, line by line (newline included): every event, then the sealing trailer."""
    count, head = 0, GENESIS
    for env in envs:
        count, head = count + 1, env.hash
        yield to_line(env) + "\n"
    yield trailer_line(count, head) + "\n"


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    events: int
    first_bad_sequence: int | None = None
    reason: str = ""
    head: str = ""  # hash of the last event, as sealed by the trailer


def verify_chain(lines: Iterable[str]) -> ChainReport:
    """Check every link of an exported log and its trailer; name the first position where it breaks.

    An edit, insertion, removal or reorder breaks a link; a cut anywhere removes the trailer
    or leaves one that no longer matches. (Whoever rewrites the trailer after a cut makes a
    shorter valid log: compare the head with the live log's or a published one.)
    """
    prev_hash = GENESIS
    count = 0
    sealed: tuple[int, str] | None = None
    for position, raw in enumerate(lines, start=1):
        line = raw.rstrip("\n")
        if sealed is not None:
            return ChainReport(False, count, position, f"line {position} follows the trailer")
        sealed = parse_trailer(line)
        if sealed is not None:
            continue
        try:
            env = from_line(line)
        except MalformedEvent as exc:
            return ChainReport(False, count, position, f"line {position}: {exc}")
        if env.sequence != position:
            return ChainReport(False, count, position,
                               f"expected sequence {position}, found {env.sequence} (removed, inserted or reordered)")
        if env.prev_hash != prev_hash:
            return ChainReport(False, count, position, "prev_hash does not link to the previous event")
        if compute_hash(env) != env.hash:
            return ChainReport(False, count, position, "hash does not match the event's content")
        try:
            unpack(env)
        except MalformedEvent as exc:
            return ChainReport(False, count, position, str(exc))
        prev_hash = env.hash
        count += 1
    if sealed is None:
        return ChainReport(False, count, count + 1, f"no trailer after sequence {count}: the file was cut there "
                                                    "(or was not written by `events export`)")
    if sealed != (count, prev_hash):
        return ChainReport(False, count, count + 1, f"the trailer seals {sealed[0]} events with head {sealed[1][:12]}, "
                                                    f"the file holds {count} with head {prev_hash[:12]}: cut after "
                                                    f"sequence {count}")
    return ChainReport(True, count, head=prev_hash)
