"""Fault case 1: an engineer SIGKILLed mid-training in a whole run. The launcher restarts it, the job
is redelivered once its lease runs out, it is finished once, and the run completes. Real processes:
`asi-arch run`, nats-server, the sandboxed training at `tiny`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from services.runtime import envelope
from services.runtime.logfile import read_file

pytestmark = pytest.mark.slow
ACK_WAIT_S = "6"  # the lease a killed worker's job waits out before redelivery


def engineer_of(data_dir: Path) -> int:
    """The pid of the run's engineer service: `services.cli serve engineer` with this data dir."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        serves_engineer = cmdline[-2:] == [b"engineer", b""] and b"serve" in cmdline
        if serves_engineer and f"ASI_DATA_DIR={data_dir}".encode() in environ:
            return int(proc.name)
    raise AssertionError("no engineer process for this data dir")


def test_a_killed_engineers_job_is_redelivered_finished_once_and_the_run_completes(tmp_path: Path) -> None:
    data = tmp_path / "asi"
    run = subprocess.Popen([sys.executable, "-m", "services.cli", "run", "--profile", "tiny", "--experiments", "1",
                            "--data-dir", str(data), "--engineers", "1", "--job-ack-wait", ACK_WAIT_S, "--json"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert run.stderr is not None
        seen = []
        for line in run.stderr:
            seen.append(line)
            if " training on " in line:  # the engineer holds a job's lease: kill it there
                killed_arch = line.split("] ", 1)[1].split()[0]
                break
        else:
            raise AssertionError("the run never started training:\n" + "".join(seen[-30:]))
        os.killpg(engineer_of(data), signal.SIGKILL)  # the worker and its sandboxed child
        out, err = run.communicate(timeout=1200)
        assert run.returncode == 0, ("".join(seen) + err)[-4000:]
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert "engineer-1 exited with code -9; restarting" in err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["experiments"] == 1
    exported = tmp_path / "run.jsonl"
    subprocess.run([sys.executable, "-m", "services.cli", "events", "export", "--data-dir", str(data), "-o",
                    str(exported)], check=True, capture_output=True, timeout=120)
    events = read_file(exported)
    started = [envelope.unpack(e) for e in events if e.type == "TrainingStarted"]
    finished = [envelope.unpack(e) for e in events if e.type == "TrainingFinished"]
    # By job: a promotion re-trains a baseline on other seeds, as jobs of their own on its arch id.
    killed_job = next(s.job_id for s in started if s.arch_id == killed_arch)
    deliveries = [s.delivery for s in started if s.job_id == killed_job]
    assert len(deliveries) >= 2 and deliveries[-1] > deliveries[0]  # started, killed, redelivered, started again
    assert sum(f.job_id == killed_job for f in finished) == 1
    assert len({f.job_id for f in finished}) == len(finished)
    verified = subprocess.run([sys.executable, "-m", "services.cli", "events", "verify", str(exported)],
                              capture_output=True, text=True, timeout=120)
    assert verified.returncode == 0, verified.stdout + verified.stderr
