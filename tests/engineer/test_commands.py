"""``asi-arch check | train | baselines`` as a user runs them: a real process, JSON on stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from services.engineer.baselines import baseline_path
from tests.engineer import mixers

REPO = Path(__file__).resolve().parents[2]


def asi_arch(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "services.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=env)


def test_check_prints_the_probe_report_and_exits_0_when_the_file_passes() -> None:
    run = asi_arch("check", str(baseline_path("gla")), "--json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["ok"] and report["errors"] == []
    assert list(report["checks"]) == ["build", "forward_backward", "finite", "causal", "complexity", "params"]


def test_check_exits_1_with_the_failure_when_the_candidate_fails(tmp_path: Path) -> None:
    candidate = tmp_path / "leaky.py"
    candidate.write_text(mixers.FUTURE_SUM)
    run = asi_arch("check", str(candidate), "--json")
    assert run.returncode == 1
    report = json.loads(run.stdout)
    assert not report["ok"] and report["errors"][0]["kind"] == "non_causal"
    assert not report["checks"]["causal"]["ok"]


def test_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    run = asi_arch("check", str(tmp_path / "missing.py"), "--json")
    assert run.returncode == 2
    assert "missing.py" in run.stderr


def test_train_prints_the_result_and_reports_progress_on_stderr(tmp_path: Path) -> None:
    run = asi_arch("train", str(baseline_path("linear_attention")), "--profile", "tiny", "--seed", "1",
                   "--data-dir", str(tmp_path), "--json")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert set(result) >= {"ok", "val_loss", "benchmarks", "benchmark_mean", "params", "tokens_per_s",
                           "train_seconds"}
    assert result["ok"] and result["val_loss"] < 4.0
    assert "step" in run.stderr and "tok/s" in run.stderr
    assert (tmp_path / "checkpoints" / f"{result['checkpoint']}.pt").exists()
