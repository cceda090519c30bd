"""Child processes that do not outlive the process that started them."""

from __future__ import annotations

import ctypes
import signal

PR_SET_PDEATHSIG = 1  # prctl option: the signal a process receives when its parent dies


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> None:
    """For `preexec_fn`: a launcher that is killed outright (SIGKILL) still takes its
    nats-server and services with it, instead of leaving them holding the data dir."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, sig)
