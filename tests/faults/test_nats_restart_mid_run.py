"""Fault case 2: `nats-server` stopped and restarted mid-run on the same store. Every service
reconnects, the run completes, and the log has no gap, no duplicate and verifies. Real processes:
`asi-arch run` against an external nats-server (`--nats`), real training at `tiny`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.runtime import envelope
from services.runtime.logfile import read_file
from services.runtime.natsserver import EmbeddedNats

pytestmark = pytest.mark.slow


def test_a_run_completes_across_a_nats_restart_with_no_event_lost_or_doubled(tmp_path: Path) -> None:
    store = tmp_path / "nats"
    server = EmbeddedNats(store)
    server.start()
    port = server.port
    data = tmp_path / "asi"
    run = subprocess.Popen([sys.executable, "-m", "services.cli", "run", "--profile", "tiny", "--experiments", "2",
                            "--data-dir", str(data), "--nats", server.url, "--json"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    restarted: EmbeddedNats | None = None
    try:
        assert run.stderr is not None
        seen = []
        for line in run.stderr:
            seen.append(line)
            if " training on " in line:  # mid-run: a job leased, events flowing
                break
        else:
            raise AssertionError("the run never started training:\n" + "".join(seen[-30:]))
        server.stop()
        time.sleep(3)  # every service notices the loss: their appends and reads retry
        restarted = EmbeddedNats(store, port=port)
        restarted.start()
        out, err = run.communicate(timeout=1200)
        assert run.returncode == 0, (("".join(seen) + err)[-4000:])
        result = json.loads(out.strip().splitlines()[-1])
        assert result["experiments"] == 2
        exported = tmp_path / "run.jsonl"
        subprocess.run([sys.executable, "-m", "services.cli", "events", "export", "--nats", restarted.url, "-o",
                        str(exported)], check=True, capture_output=True, timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        server.stop()
        if restarted is not None:
            restarted.stop()
    verified = subprocess.run([sys.executable, "-m", "services.cli", "events", "verify", str(exported)],
                              capture_output=True, text=True, timeout=120)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    events = read_file(exported)
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))  # no gap
    assert len({e.event_id for e in events}) == len(events)  # nothing stored twice
    assert not [e for e in events if e.type == "EventRejected"]
    finished = [envelope.unpack(e) for e in events if e.type == "TrainingFinished"]
    assert len({f.job_id for f in finished}) == len(finished)  # no job trained twice
    assert sum(e.type == "RunFinished" for e in events) == 1
