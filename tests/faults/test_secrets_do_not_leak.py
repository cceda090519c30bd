"""Security 7: a whole run on the embedded server, which has a password per service, leaks none of
them: not into the exported log, not into any service's log or the server's, not onto the
launcher's output, and not to candidate code, which an engineer runs with its own password in its
environment. Real processes, real nats-server, training at `tiny`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.engineer.sandbox import REPO_ROOT
from tests.engineer import mixers

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finished_run() -> Iterator[tuple[Path, subprocess.CompletedProcess[str]]]:
    """A finished run whose data dir is where a deployment keeps one, not under /tmp (which the
    sandbox hides anyway)."""
    data_dir = REPO_ROOT / f".faults-data-{uuid.uuid4().hex}"
    try:
        run = subprocess.run([sys.executable, "-m", "services.cli", "run", "--experiments", "1", "--profile", "tiny",
                              "--data-dir", str(data_dir)], capture_output=True, text=True, timeout=900)
        assert run.returncode == 0, run.stderr[-3000:]
        yield data_dir, run
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def passwords_of(data_dir: Path) -> dict[str, str]:
    return json.loads((data_dir / "nats-auth" / "credentials.json").read_text())


def files_holding(root: Path, secrets: list[str], *, skip: Path) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_relative_to(skip):
            blob = path.read_bytes()
            found += [f"{path}: {secret[:4]}..." for secret in secrets if secret.encode() in blob]
    return found


def test_no_password_reaches_the_export_a_log_or_the_output(
        finished_run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    data_dir, run = finished_run
    passwords = list(passwords_of(data_dir).values())
    assert len(passwords) >= 5
    exported = data_dir / "run.jsonl"
    subprocess.run([sys.executable, "-m", "services.cli", "events", "export", "--data-dir", str(data_dir),
                    "-o", str(exported)], check=True, capture_output=True, timeout=120)
    # Every file of the data dir but the credentials themselves: the export, each service's log,
    # nats-server.log, the store's blocks, the checkpoints.
    assert files_holding(data_dir, passwords, skip=data_dir / "nats-auth") == []
    assert (data_dir / "logs" / "engineer-1.log").stat().st_size > 0
    # Every service did its work within its permissions.
    assert "Permissions Violation" not in (data_dir / "nats-server.log").read_text()
    assert not [secret for secret in passwords if secret in run.stdout + run.stderr]


@pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox runs candidate code as another user only as root")
def test_candidate_code_run_by_an_engineer_reads_no_password(
        finished_run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    # Run as an engineer runs it, with the engineer's password in the environment, the code reads
    # every process's environment, the data dir's credentials and its own environment.
    data_dir, _ = finished_run
    auth = data_dir / "nats-auth"
    passwords = list(passwords_of(data_dir).values())
    engineer_password = passwords_of(data_dir)["engineer"]
    reader = mixers.mixer("return self.proj(x)", init_extra=(
        "import os\n"
        "found, refused, read = [], [], 0\n"
        "paths = [f'/proc/{p}/environ' for p in os.listdir('/proc') if p.isdigit()]\n"
        f"paths += [os.path.join({str(auth)!r}, f) for f in ('credentials.json', 'nats-server.conf')]\n"
        f"secrets = {passwords!r}\n"
        "for path in paths:\n"
        "    try:\n"
        "        blob = open(path, 'rb').read()\n"
        "        read += 1\n"
        "        found += [path for s in secrets if s.encode() in blob]\n"
        "    except OSError as exc:\n"
        "        refused.append(type(exc).__name__)\n"
        "found += ['own environment' for s in secrets if s in repr(dict(os.environ))]\n"
        "raise RuntimeError(f'found {found} refused {sorted(set(refused))} of {len(paths)} read {read}')"))
    engineer = subprocess.run(
        [sys.executable, "-c",
         "import json, sys\n"
         "from services.engineer.sandbox import Limits, run_sandboxed\n"
         "events = run_sandboxed({'mode': 'check', 'profile': None, 'allow_quadratic': False}, sys.stdin.read(),\n"
         "                       Limits(timeout_s=60, memory_mb=4096, threads=1))\n"
         "print(json.dumps(events[-1]))"],
        input=reader, capture_output=True, text=True, timeout=120, cwd=REPO_ROOT,
        env={**os.environ, "ASI_NATS_USER": "engineer", "ASI_NATS_PASSWORD": engineer_password})
    assert engineer.returncode == 0, engineer.stderr[-2000:]
    failure = json.loads(engineer.stdout.strip().splitlines()[-1])
    assert failure["event"] == "failure" and "found []" in failure["message"], failure
    assert "PermissionError" in failure["message"]  # the attempts were made, and the OS refused them
