"""`--parent-strategy` and `--seed-arch` reach the run's options, and bad values are refused up front."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.cli import build_parser
from services.engineer.baselines import baseline_path
from services.runtime.launcher import UsageError, run_options


def options(*args: str):
    return run_options(build_parser().parse_args(["run", "--profile", "tiny", *args]))


def test_the_strategy_and_seed_architectures_are_taken_from_the_command_line():
    chosen = options("--parent-strategy", "islands", "--seed-arch", str(baseline_path("gla")),
                     str(baseline_path("mamba2")))
    assert chosen.parent_strategy == "islands"
    assert chosen.seed_archs == (baseline_path("gla"), baseline_path("mamba2"))
    assert options().parent_strategy == "paper" and options().seed_archs == ()


def test_an_unknown_strategy_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit):
        options("--parent-strategy", "ucb")
    assert "invalid choice: 'ucb'" in capsys.readouterr().err


def test_a_missing_seed_architecture_is_refused(tmp_path: Path):
    with pytest.raises(UsageError, match="is not a file"):
        options("--seed-arch", str(tmp_path / "absent.py"))
