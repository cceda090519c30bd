"""How many engineer workers a machine runs by default, and how many threads each one's experiments get.

Measured on the 2-core machine (engineer README, "Engineers per core"): two engineers of one thread
each finish more experiments per hour than one engineer of two threads. The model's ops are small
(d_model 128), so a second thread speeds one experiment up far less than twice, while a second
single-threaded experiment runs beside the first at nearly full speed.
"""

from __future__ import annotations

import os

ENGINEER_THREADS_ENV = "ASI_ENGINEER_THREADS"  # set by the launcher on each engineer worker
# One engineer per core up to here: each `cpu` experiment holds about a gigabyte, and on a bigger
# machine a few multi-threaded experiments use the cores as well as many single-threaded ones.
MAX_DEFAULT_ENGINEERS = 4


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_engineers(cores: int) -> int:
    """One engineer per core, at most MAX_DEFAULT_ENGINEERS: 2 on a 2-core machine."""
    return max(1, min(cores, MAX_DEFAULT_ENGINEERS))


def threads_per_engineer(cores: int, engineers: int) -> int:
    """The cores shared out evenly, so that engineers never ask for more threads than there are cores."""
    return max(1, cores // engineers)


def experiment_threads() -> int:
    """Threads for an experiment whose profile leaves the choice open: the launcher's share, else every core."""
    return int(os.environ.get(ENGINEER_THREADS_ENV) or 0) or usable_cores()
