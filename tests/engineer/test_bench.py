"""The engineer's benchmark runs and reports what it promises (its figures are not checked:
benchmarks are not tests)."""

import json
import subprocess
import sys


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
