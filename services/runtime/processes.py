"""Child processes that do not outlive the process that started them."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess

PR_SET_PDEATHSIG = 1  # prctl option: the signal a process receives when its parent dies


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> None:
    """For `preexec_fn`: a launcher that is killed outright (SIGKILL) still takes its
    nats-server and services with it, instead of leaving them holding the data dir."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, sig)


def stop_group(process: subprocess.Popen | None, timeout_s: float = 10.0) -> None:
    """End a server started in its own session: SIGTERM to its group, SIGKILL if it is still up
    after ``timeout_s``."""
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
