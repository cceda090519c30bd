"""A smoke run of the event log's load benchmark (`python -m services.runtime.bench_load`) at tiny
sizes: it runs end to end against a real nats-server and reports what it measured."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_the_load_benchmark_prints_a_table_and_one_json_line() -> None:
    done = subprocess.run([sys.executable, "-m", "services.runtime.bench_load", "--appends", "50",
                           "--replay-events", "200", "--queue-jobs", "12", "--queue-workers", "2"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    *table, last = done.stdout.strip().splitlines()
    report = json.loads(last)
    assert report["append"]["events"] == 50 and report["bare_publish"]["events"] == 50
    assert report["replay"]["events"] == 200
    assert report["append_to_bare_ratio"] > 0
    assert any("EventStore.append" in line for line in table)
    # Every job went through the queue once, to the engineers that took it.
    for key, workers in (("queue_one_engineer", 1), ("queue", 2)):
        assert report[key]["workers"] == workers and sum(report[key]["per_worker"].values()) == 12
    assert report["queue_speedup"] > 0
