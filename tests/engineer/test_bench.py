"""The engineer's benchmark runs and reports what it promises (its figures are not checked:
benchmarks are not tests)."""

import json
import subprocess
import sys

import pytest

from services.engineer import bench


def test_the_benchmark_prints_a_table_and_one_json_line() -> None:
    result = subprocess.run([sys.executable, "-m", "services.engineer.bench", "--profile", "tiny", "--threads", "1",
                             "--steps", "1", "--rounds", "1"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    report = json.loads(lines[-1])
    names = [row["implementation"] for row in report["results"]]
    assert names[0] == "kernels.chunk_gated_delta_rule" and "fla naive_chunk_gated_delta_rule" in names
    assert all(row["tokens_per_s"] > 0 and 0 < row["mfu"] < 1 for row in report["results"])
    assert set(report["speedup_of_ours_over"]) == {"fla naive_chunk_gated_delta_rule"}
    assert any(line.startswith("implementation") for line in lines)


def run_experiment_bench(*extra: str) -> dict:
    result = subprocess.run([sys.executable, "-m", "services.engineer.bench", "--experiment", "--profile", "tiny",
                             "--baselines", "deltanet", *extra], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert any(line.startswith("phase") for line in lines) and "experiments per hour" in result.stdout
    return json.loads(lines[-1])


def test_the_experiment_benchmark_accounts_for_every_second_of_an_experiment() -> None:
    report = run_experiment_bench()
    assert report["bench"] == "engineer-experiment" and len(report["runs"]) == 1
    run = report["runs"][0]
    assert set(bench.PHASES) <= set(run["phases"])
    # The hand-back is the remainder, so the phases add up to the experiment; none is negative.
    assert sum(run["phases"].values()) == pytest.approx(run["seconds"])
    assert all(seconds >= 0 for seconds in run["phases"].values()), run["phases"]
    assert run["phases"]["train_text"] > 0 and run["phases"]["train_tasks"] > 0
    # Experiments per hour come from the wall clock around the experiments: nothing much else in it.
    assert report["experiments_per_hour"] == pytest.approx(3600 / run["seconds"], rel=0.02)


@pytest.mark.slow
def test_the_experiment_benchmark_times_another_revision_beside_ours() -> None:
    report = run_experiment_bench("--reference", "HEAD")
    assert report["reference"]["revision"] == "HEAD" and report["reference"]["runs"][0]["ok"]
    assert report["speedup_over_reference"] == pytest.approx(
        report["experiments_per_hour"] / report["reference"]["experiments_per_hour"])
