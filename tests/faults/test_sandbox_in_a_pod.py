"""Security 8, the parts that run here: the sandbox as an engineer pod runs it, as root with only
the capabilities the chart gives the engineer container (so no namespaces at all: unshare needs
CAP_SYS_ADMIN). Candidate code then still runs as a user of its own, opens no socket, reads no
other process's environment and no 0600 file, and leaves no process behind, a `setsid` escapee
included. The capabilities are read from the chart's values, so the test follows the chart."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from services.engineer.sandbox import REPO_ROOT
from services.engineer.sandbox_child import SANDBOX_UIDS
from tests.engineer import mixers

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="emulating the pod's capabilities needs root")
VALUES = REPO_ROOT / "deploy" / "k8s" / "asi-arch" / "values.yaml"
SECRET = f"secret-{uuid.uuid4().hex}"

DIALER = (
    "import ctypes\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "fd = libc.socket(2, 1, 0)\n"  # AF_INET, SOCK_STREAM through libc: past the audit hook
    "raise RuntimeError(f'socket {fd} errno {ctypes.get_errno()}')"
)
ESCAPEE = (
    "import ctypes\n"
    "libc = ctypes.CDLL(None)\n"
    "if libc.fork() == 0:\n"
    "    libc.setsid()\n"
    "    libc.sleep(600)\n"
    "raise RuntimeError('the parent is done')"
)


def reader(private: Path) -> str:
    return (
        "import os\n"
        "found, refused = [], []\n"
        f"paths = [f'/proc/{{p}}/environ' for p in os.listdir('/proc') if p.isdigit()] + [{str(private)!r}]\n"
        "for path in paths:\n"
        "    try:\n"
        f"        if {SECRET!r}.encode() in open(path, 'rb').read():\n"
        "            found.append(path)\n"
        "    except OSError as exc:\n"
        "        refused.append(type(exc).__name__)\n"
        "raise RuntimeError(f'found {found} refused {sorted(set(refused))}')"
    )


# Runs under the pod's capabilities: every case in one sandboxed check each, and what was left.
DRIVER = """
import json, sys
from pathlib import Path
from services.engineer.sandbox import Limits, namespaces_available, run_sandboxed

def survivors(scratch):
    found = []
    for proc in Path('/proc').iterdir():
        try:
            if proc.name.isdigit() and scratch.encode() in (proc / 'cmdline').read_bytes():
                found.append(int(proc.name))
        except OSError:
            pass
    return found

report = {"namespaces": list(namespaces_available())}
for name, code in json.loads(sys.stdin.read()).items():
    scratch = []
    def learn(event):
        if event["event"] == "isolation":
            scratch.append(event["scratch"])
    events = run_sandboxed({"mode": "check", "profile": None, "allow_quadratic": False}, code,
                           Limits(timeout_s=60, memory_mb=4096, threads=1), on_event=learn)
    isolation = next(e for e in events if e["event"] == "isolation")
    report[name] = {"isolation": isolation, "last": events[-1], "survivors": survivors(scratch[0]) if scratch else None}
print(json.dumps(report))
"""


def pod_capabilities() -> list[str]:
    engineer = yaml.safe_load(VALUES.read_text())["engineer"]["containerSecurityContext"]
    assert engineer["runAsUser"] == 0 and engineer["capabilities"]["drop"] == ["ALL"]
    return [c.lower() for c in engineer["capabilities"]["add"]]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    private_dir = REPO_ROOT / f".faults-data-{uuid.uuid4().hex}"  # not under /tmp, as in a pod
    private_dir.mkdir()
    try:
        private = private_dir / "credentials"
        private.write_text(f"password={SECRET}\n")
        private.chmod(0o600)
        cases = {"dialer": DIALER, "escapee": ESCAPEE, "reader": reader(private),
                 "valid": mixers.CAUSAL_MEAN}
        capabilities = ",".join(["-all", *(f"+{c}" for c in pod_capabilities())])
        done = subprocess.run(
            [shutil.which("setpriv") or "setpriv", f"--bounding-set={capabilities}", "--inh-caps=-all",
             sys.executable, "-c", DRIVER],
            input=json.dumps({k: mixers.mixer("return self.proj(x)", init_extra=v) if k != "valid" else v
                              for k, v in cases.items()}),
            capture_output=True, text=True, timeout=600, cwd=REPO_ROOT,
            env={**os.environ, "ASI_NATS_PASSWORD": SECRET, "PYTHONPATH": str(REPO_ROOT)})
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(private_dir)


def test_without_cap_sys_admin_there_are_no_namespaces_but_the_user_switch_and_the_filter_hold(report: dict) -> None:
    assert report["namespaces"] == []
    isolation = report["valid"]["isolation"]
    assert isolation["uid"] in SANDBOX_UIDS and isolation["network_filter"] is True
    assert not isolation["network_isolated"] and not isolation["pid_namespace"]
    assert report["valid"]["last"]["event"] == "result"  # a good mixer still passes every probe


def test_candidate_code_opens_no_socket(report: dict) -> None:
    assert report["dialer"]["last"]["message"].endswith("socket -1 errno 13"), report["dialer"]  # EACCES


def test_candidate_code_reads_no_environment_and_no_private_file(report: dict) -> None:
    message = report["reader"]["last"]["message"]
    assert "found []" in message and "PermissionError" in message, message


def test_a_setsid_escapee_is_ended_with_the_sandbox(report: dict) -> None:
    assert "the parent is done" in report["escapee"]["last"]["message"]
    assert report["escapee"]["survivors"] == []
