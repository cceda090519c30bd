"""Run candidate code in a separate, confined process and turn whatever happens into events.

Layers, outermost first: a wall-clock deadline that kills the whole process group; a PID
namespace whose processes all die with the child (``unshare -p -f``); a fresh
network namespace (``unshare -n``) and a mount namespace whose world-writable folders (/tmp,
/var/tmp, /dev/shm, /run/lock) are private, empty tmpfs, where the OS allows; an environment built from
nothing (no inherited variables, hence no credentials); kernel resource limits (address
space, CPU seconds, file size, processes); a user of its own (from ``SANDBOX_UIDS``), which owns
the scratch directory and which the child switches to before running candidate code; a seccomp
filter refusing every socket but a Unix one; and an audit hook inside the child that names the
violation. Where no PID namespace can be made, every process of the sandbox's user is killed when
it ends.  Whatever the candidate does, the caller gets a list of events ending in
``result`` or ``failure``.
"""

from __future__ import annotations

import functools
import json
import os
import random
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from services.engineer.sandbox_child import CANDIDATE_FILE, SANDBOX_UIDS
from services.runtime.processes import die_with_parent

REPO_ROOT = Path(__file__).resolve().parents[2]
CHILD = "services.engineer.sandbox_child"
USER_KILL_WAIT_S = 10.0  # how long a killed sandbox user's processes may take to end


def bootstrap(child: str) -> str:
    """The child's command: import ``child`` (a module with ``main()``) from this checkout and run it.

    After main() has sent its last event the child exits at once: finalising an interpreter that holds
    torch, the model and the optimizer took about a second of every experiment, and nothing in it is
    needed (the candidate's output is flushed first)."""
    return (f"import os, sys; sys.path.insert(0, {str(REPO_ROOT)!r}); from {child} import main; main(); "
            "sys.stdout.flush(); sys.stderr.flush(); os._exit(0)")
STDERR_TAIL = 4000


@dataclass(frozen=True)
class Limits:
    timeout_s: float
    memory_mb: int | None  # address space; None leaves it unbounded (CUDA maps terabytes)
    threads: int
    file_mb: int = 2048  # the largest file the child may write: room for a checkpoint
    processes: int = 4096  # the sandbox user's process count (its own user: its own count); stops fork bombs


# A PID namespace's first process is its init: when it ends, the kernel kills every process in
# the namespace, so nothing the candidate forks (a fork bomb, a child that calls setsid to leave
# the process group) outlives the sandbox or keeps its pipe open. `--kill-child` ends that init
# with unshare itself, from its first instruction.
PID_NAMESPACE = ("-p", "-f", "--kill-child")


@functools.cache
def namespaces_available() -> tuple[str, ...]:
    """Which of ``unshare``'s namespaces work here: ``-n`` (network), ``-m`` (mounts, for a private
    /tmp) and ``-p`` (processes, so that none outlives the sandbox).

    They need root (or unprivileged user namespaces); where they fail the sandbox runs without
    them and says so in its isolation report.
    """
    working = []
    for flag, command in (("-n", ["-n"]), ("-m", ["-m"]), ("-p", list(PID_NAMESPACE))):
        try:
            if subprocess.run(["unshare", *command, "true"], capture_output=True, timeout=10).returncode == 0:
                working.append(flag)
        except (OSError, subprocess.TimeoutExpired):
            pass
    return tuple(working)


def jail_prefix() -> list[str]:
    """The command prefix that gives the child fresh network, mount and PID namespaces, where possible."""
    namespaces = namespaces_available()
    flags = [flag for flag in namespaces if flag != "-p"] + (list(PID_NAMESPACE) if "-p" in namespaces else [])
    return ["unshare", *flags] if flags else []


def _environment(scratch: Path, threads: int) -> dict[str, str]:
    """Built from nothing: the child inherits no variable, so no token or credential."""
    return {
        "HOME": str(scratch),
        "TMPDIR": str(scratch),
        "OMP_NUM_THREADS": str(threads),
        # Waiting OpenMP threads sleep instead of spinning: on a shared machine a spinning thread
        # whose sibling was descheduled burns its core (measured here, cpu profile, 2 threads under
        # load: 0.5-3K tokens/s spinning, 8-11K sleeping).
        "OMP_WAIT_POLICY": "PASSIVE",
        "LANG": "C.UTF-8",
    }


def _make_scratch(uid: int) -> Path:
    """The child's working directory: ours, and its user's through the group (the child's gid is its
    uid), so that without CAP_DAC_OVERRIDE or CAP_FOWNER (an engineer pod) we can still write the
    request into it, and move and delete what it leaves there. No one else may enter."""
    scratch = Path(tempfile.mkdtemp(prefix="asi-sandbox-"))
    if os.geteuid() == 0:
        os.chown(scratch, -1, uid)
        scratch.chmod(0o770)
    return scratch


def _kill_user(uid: int) -> None:
    """SIGKILL every process of the sandbox's user: what it left behind where no PID namespace
    could end it (a pod without CAP_SYS_ADMIN), such as a child that called setsid."""
    # The shell's own kill, as that user: kill(-1) reaches exactly that user's processes (the shell
    # too). Not our Python, whose installation that user may not be allowed to read.
    # SIGKILL is delivered at once but a process takes a moment to end: until then it still runs
    # (and a test, or the next sandbox, would see it), so wait for the user's last process to go.
    deadline = time.monotonic() + USER_KILL_WAIT_S
    while True:
        subprocess.run(["/bin/sh", "-c", "kill -KILL -1"], user=uid, group=uid, extra_groups=[],
                       capture_output=True, timeout=30)
        if not _live_processes_of(uid) or time.monotonic() > deadline:
            return
        time.sleep(0.05)


def _live_processes_of(uid: int) -> list[int]:
    """Processes whose real uid is ``uid``, zombies (already ended, not yet reaped) left out."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = dict(line.split(":", 1) for line in (proc / "status").read_text().splitlines() if ":" in line)
        except OSError:  # ended while we looked
            continue
        if int(fields["Uid"].split()[0]) == uid and not fields["State"].strip().startswith(("Z", "X")):
            found.append(int(proc.name))
    return found


def run_sandboxed(
    request: dict,
    code: str,
    limits: Limits,
    on_event: Callable[[dict], None] | None = None,
    keep: tuple[str, ...] = (),
    keep_dir: Path | None = None,
    child: str = CHILD,
) -> list[dict]:
    """Run one request in a fresh sandbox; return its events, the last being result or failure.

    ``on_event`` sees each event as it arrives, in the calling thread.  Files named in ``keep``
    are moved from the scratch directory into ``keep_dir`` before the scratch is deleted.
    ``child`` is the module the sandboxed process runs (the judge's leak re-check has its own).
    """
    uid = random.choice(SANDBOX_UIDS)
    scratch = _make_scratch(uid)
    namespaces = namespaces_available()
    request = {
        **request,
        "uid": uid,
        "threads": limits.threads,
        "network_isolated": "-n" in namespaces,
        "mount_namespace": "-m" in namespaces,
        "pid_namespace": "-p" in namespaces,
        "limits": {
            "memory_bytes": limits.memory_mb * 2**20 if limits.memory_mb else None,
            "cpu_seconds": int(limits.timeout_s * max(1, limits.threads)) + 30,
            "file_bytes": limits.file_mb * 2**20,
            "processes": limits.processes,
        },
    }
    request["spawned_at"] = time.time()  # the child's start-up is measured from here (one machine, one clock)
    (scratch / "request.json").write_text(json.dumps(request))
    (scratch / CANDIDATE_FILE).write_text(code)
    read_fd, write_fd = os.pipe()
    argv = [*jail_prefix(), sys.executable, "-I", "-B", "-c", bootstrap(child), str(scratch), str(write_fd)]
    events: list[dict] = []
    stderr_file = tempfile.TemporaryFile()
    process: subprocess.Popen | None = None
    try:
        process = subprocess.Popen(
            argv,
            cwd=scratch,
            env=_environment(scratch, limits.threads),
            stdin=subprocess.DEVNULL,
            stdout=stderr_file,
            stderr=stderr_file,
            pass_fds=(write_fd,),
            start_new_session=True,  # its own process group: one kill ends it and anything it started
            # Killed with its caller from the first instruction, imports included (the child sets it
            # again after its user switch, which clears it).
            preexec_fn=functools.partial(die_with_parent, signal.SIGKILL),
        )
        os.close(write_fd)  # the child holds it now; our copy would keep the pipe open forever
        write_fd = -1
        timed_out = _pump(process, read_fd, time.monotonic() + limits.timeout_s, events, on_event)
        if timed_out:
            _kill_group(process)
        returncode = process.wait()
        _kill_group(process)  # anything it left behind
        stderr_file.seek(0, os.SEEK_END)
        stderr_file.seek(max(0, stderr_file.tell() - STDERR_TAIL))
        stderr_tail = stderr_file.read().decode(errors="replace")
        if not events or events[-1]["event"] not in ("result", "failure"):
            failure = _explain_exit(returncode, timed_out, limits, stderr_tail)
            events.append(failure)
            if on_event:
                on_event(failure)
        for name in keep:
            if (scratch / name).exists() and keep_dir is not None:
                keep_dir.mkdir(parents=True, exist_ok=True)
                shutil.move(scratch / name, keep_dir / name)
    finally:
        if process is not None and process.poll() is None:  # we are unwinding from an error of ours
            _kill_group(process)
            process.wait()
        os.close(read_fd)
        if write_fd >= 0:  # Popen failed before the child took it
            os.close(write_fd)
        stderr_file.close()
        shutil.rmtree(scratch, ignore_errors=True)
        if os.geteuid() == 0 and "-p" not in namespaces:
            _kill_user(uid)
    isolation = next((e for e in events if e["event"] == "isolation"), None)
    if isolation is None:
        events.insert(0, {"event": "isolation", "network_isolated": "-n" in namespaces})
    return events


def _pump(process: subprocess.Popen, fd: int, deadline: float, events: list[dict],
          on_event: Callable[[dict], None] | None) -> bool:
    """Read JSON lines until the child closes the pipe; True if the deadline came first."""
    selector = selectors.DefaultSelector()
    selector.register(fd, selectors.EVENT_READ)
    buffer = b""
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            if not selector.select(timeout=min(remaining, 1.0)):
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                return False
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue  # the candidate wrote garbage on our descriptor: ignore it
                if not isinstance(event, dict) or "event" not in event:
                    continue
                events.append(event)
                if on_event:
                    on_event(event)
    finally:
        selector.close()


def _kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the sandbox and everything it started.

    In a PID namespace the namespace's init (unshare's one child) is killed first and unshare,
    still alive, reaps it and exits: killing unshare first would leave that init a zombie of
    whichever process adopts it. Its death takes every other process of the namespace with it.
    """
    if process.args[:1] == ["unshare"] and PID_NAMESPACE[0] in process.args:
        try:
            init = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        except OSError:  # unshare is gone already
            init = []
        for pid in init:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        if init:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass  # the group kill below ends unshare too
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _explain_exit(returncode: int, timed_out: bool, limits: Limits, stderr_tail: str) -> dict:
    """The child ended without saying why: infer the kind from how it ended."""
    if timed_out:
        kind, message = "timeout", f"no result within the wall-clock limit of {limits.timeout_s:.0f} s"
    elif returncode == -signal.SIGXCPU:
        kind, message = "timeout", "CPU-time limit exceeded"
    elif returncode == -signal.SIGKILL:
        kind, message = "memory", "killed by SIGKILL outside the deadline: the memory limit or the OOM killer"
    elif returncode == -signal.SIGXFSZ:
        kind, message = "sandbox_violation", f"wrote a file larger than the {limits.file_mb} MiB limit"
    elif "MemoryError" in stderr_tail or "allocate memory" in stderr_tail:
        kind, message = "memory", "ran out of memory"
    elif returncode < 0:
        kind, message = "crashed", f"killed by signal {signal.Signals(-returncode).name}"
    else:
        kind, message = "crashed", f"exited with status {returncode} without a result"
    return {"event": "failure", "kind": kind, "message": message, "traceback": stderr_tail}
