"""Fault case 5, more hostile code: a fork bomb, a child that leaves the process group, reads of
secrets, and a connection to the real NATS server. Each runs in the real sandbox past the static
reading (as tests/engineer/test_sandbox.py's second half does), so the OS layers stand alone.

"The host process tree is clean" is checked by name: every process of one sandbox carries its
scratch directory, a fresh random path, on its command line (forks inherit it).
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.engineer.data import prepare_corpus
from services.engineer.sandbox import REPO_ROOT, Limits, namespaces_available, run_sandboxed
from services.pb import events_pb2
from services.runtime.eventstore import EventStore
from services.runtime.natsserver import EmbeddedNats
from services.runtime.private import private_folder
from tests.engineer import mixers

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the OS layers of the sandbox need root")
CHECK_REQUEST = {"mode": "check", "profile": None, "allow_quadratic": False}
SECRET = f"secret-{uuid.uuid4().hex}"


def in_init(statements: str) -> str:
    return mixers.mixer("return self.proj(x)", init_extra=statements)


def host_processes_naming(text: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if text.encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            pass  # it ended while we looked
    return found


def run_hostile(code: str, **limits: int) -> tuple[dict, str]:
    """Run code in the sandbox; return its failure event and the scratch directory it ran in."""
    scratch: list[str] = []

    def learn_scratch(event: dict) -> None:
        if event["event"] == "isolation":  # from the event: the child may be gone before we could look
            scratch.append(event["scratch"])

    events = run_sandboxed(CHECK_REQUEST, code, Limits(timeout_s=60, memory_mb=4096, threads=1, **limits),
                           on_event=learn_scratch)
    assert events[-1]["event"] == "failure", events[-1]
    assert scratch, "no isolation event from a live child"
    return events[-1], scratch[0]


def test_the_sandbox_has_a_pid_namespace_here() -> None:
    # The two process stories below rely on it; where unshare -p is refused they would not hold.
    assert "-p" in namespaces_available()


def test_a_fork_bomb_is_bounded_by_the_process_limit_and_leaves_no_process() -> None:
    limit = 64
    bomb = in_init(
        "import ctypes\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "forked = 0\n"
        "while True:\n"
        "    pid = libc.fork()\n"  # libc's fork raises no audit event: the process limit must stop it
        "    if pid == 0:\n"
        "        libc.pause()\n"
        "    if pid < 0:\n"
        "        break\n"
        "    forked += 1\n"
        "raise RuntimeError(f'forked {forked} then errno {ctypes.get_errno()}')"
    )
    failure, scratch = run_hostile(bomb, processes=limit)
    stopped = re.search(r"forked (\d+) then errno (\d+)", failure["message"])
    assert stopped, failure["message"]
    assert int(stopped[1]) < limit and int(stopped[2]) == 11  # EAGAIN: the per-user process limit
    assert host_processes_naming(scratch) == []


def test_a_child_that_leaves_the_process_group_dies_with_the_sandbox() -> None:
    # setsid puts the child beyond the group kill; only the PID namespace still ends it.
    escapee = in_init(
        "import ctypes\n"
        "libc = ctypes.CDLL(None)\n"
        "if libc.fork() == 0:\n"
        "    libc.setsid()\n"
        "    libc.sleep(600)\n"
        "raise RuntimeError('the parent is done')"
    )
    failure, scratch = run_hostile(escapee)
    assert "the parent is done" in failure["message"]
    assert host_processes_naming(scratch) == []


@pytest.fixture
def data_dir_outside_tmp() -> Iterator[Path]:
    """A data dir where a deployment keeps one, not under /tmp (which the sandbox hides anyway)."""
    path = REPO_ROOT / f".faults-data-{uuid.uuid4().hex}"
    path.mkdir()
    yield path
    shutil.rmtree(path)


async def test_the_event_log_a_credentials_file_and_the_callers_environment_are_unreadable(
        data_dir_outside_tmp: Path) -> None:
    server = EmbeddedNats(data_dir_outside_tmp / "nats")
    server.start()
    try:
        store = await EventStore.open(server.url, "test")
        await store.append(events_pb2.ArchitectureProposed(arch_id="a1", name=SECRET, code="x"),
                           run_id="r", aggregate_id="arch-a1")
        await store.close()
        credentials = data_dir_outside_tmp / "credentials"
        credentials.write_text(f"token={SECRET}\n")
        credentials.chmod(0o600)
        # What an engineer keeps there: the corpus splits and a checkpoint, in folders it makes.
        splits = prepare_corpus(None, data_dir_outside_tmp)
        checkpoint = private_folder(data_dir_outside_tmp / "checkpoints") / "0123abcd.pt"
        checkpoint.write_bytes(b"weights")
        # Everything under the data dir, then the caller's own environment and init's.
        reader = in_init(
            "import os\n"
            "found, refused, opened = [], [], []\n"
            f"paths = [os.path.join(d, f) for d, _, fs in os.walk({str(data_dir_outside_tmp)!r}) for f in fs]\n"
            f"paths += {[str(p) for p in (*splits, checkpoint)]!r}\n"
            f"paths += ['/proc/{os.getpid()}/environ', '/proc/1/environ']\n"
            "for path in paths:\n"
            "    try:\n"
            "        blob = open(path, 'rb').read()\n"
            "        opened.append(path)\n"
            f"        if {SECRET!r}.encode() in blob:\n"
            "            found.append(path)\n"
            "    except OSError as exc:\n"
            "        refused.append(type(exc).__name__)\n"
            "raise RuntimeError(f'found {found} refused {sorted(set(refused))} opened {opened}')"
        )
        failure, _ = run_hostile(reader)
    finally:
        server.stop()
    assert "found []" in failure["message"], failure["message"]
    # The splits, the checkpoint and the environ files at least, each refused by the OS; nothing
    # in the data dir could be opened at all (its folders are the engineer's alone).
    assert "refused ['PermissionError'] opened []" in failure["message"], failure["message"]


def test_a_connection_to_the_nats_server_finds_no_route(nats_server: EmbeddedNats) -> None:
    port = int(nats_server.url.rsplit(":", 1)[1])
    # Through libc, so the audit hook sees no socket event and only the network namespace stands.
    dialer = in_init(
        "import ctypes, struct\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "fd = libc.socket(2, 1, 0)\n"  # AF_INET, SOCK_STREAM
        f"address = struct.pack('>HH4s8x', 0, {port}, bytes([127, 0, 0, 1]))\n"
        "address = struct.pack('<H', 2) + address[2:]\n"  # sa_family in host order, the port in network order
        "result = libc.connect(fd, address, 16)\n"
        "raise RuntimeError(f'socket {fd} connect {result} errno {ctypes.get_errno()}')"
    )
    failure, _ = run_hostile(dialer)
    # The seccomp filter refuses the socket (EACCES); the network namespace stands behind it.
    assert failure["message"].endswith("socket -1 connect -1 errno 9"), failure["message"]  # EBADF
