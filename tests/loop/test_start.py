"""`asi-arch start` begins a run on servers that are already running (a cluster) and
returns; it never starts a second run by accident."""

from __future__ import annotations

import json
import subprocess
import sys

from services.runtime import envelope
from services.runtime.eventstore import EventStore
from services.runtime.natsserver import EmbeddedNats


def start(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.cli", "start", "--nats", url, "--experiments", "2",
                           "--profile", "tiny", "--json", *extra], capture_output=True, text=True, timeout=120)


async def test_start_appends_one_run_and_then_reports_it(nats_server: EmbeddedNats, store: EventStore) -> None:
    first = start(nats_server.url)
    assert first.returncode == 0, first.stderr
    started = json.loads(first.stdout)
    assert started["started"] == "true"
    again = json.loads(start(nats_server.url).stdout)
    assert again == {"run_id": started["run_id"], "started": "false"}
    records = [r for r in await store.read_all() if r.env]
    assert [r.env.type for r in records] == ["RunStarted"]
    run = envelope.unpack(records[0].env)
    assert (records[0].env.run_id, run.experiments, run.profile) == (started["run_id"], 2, "tiny")
    forced = json.loads(start(nats_server.url, "--new-run").stdout)
    assert forced["started"] == "true" and forced["run_id"] != started["run_id"]


def test_a_bad_setting_is_refused_before_anything_starts(nats_server: EmbeddedNats) -> None:
    refused = subprocess.run([sys.executable, "-m", "services.cli", "start", "--nats", nats_server.url,
                              "--profile", "huge"], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "unknown profile 'huge'" in refused.stderr
