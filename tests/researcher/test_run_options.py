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


def preset_options(*args: str):
    return run_options(build_parser().parse_args(["run", *args]))


def test_the_discover_preset_names_the_exploration_and_promotion_profiles():
    chosen = preset_options("--preset", "discover")
    assert (chosen.preset, chosen.profile, chosen.promotion_profile, chosen.experiments, chosen.parent_strategy) == (
        "discover", "explore-long", "cpu", 100, "pareto")
    # A flag given beside the preset overrides its value; the rest of the preset stands.
    chosen = preset_options("--preset", "discover", "--experiments", "12", "--promotion-profile", "tiny")
    assert (chosen.profile, chosen.promotion_profile, chosen.experiments) == ("explore-long", "tiny", 12)
    # Without a preset: the built-in defaults, promotions at the run's own profile.
    plain = preset_options()
    assert (plain.preset, plain.profile, plain.promotion_profile, plain.experiments, plain.parent_strategy) == (
        "", "cpu", "", 8, "paper")
    assert preset_options("--preset", "discover", "--parent-strategy", "paper").parent_strategy == "paper"


def test_an_unknown_preset_or_promotion_profile_is_refused():
    with pytest.raises(UsageError, match="--preset fast: unknown; known: discover"):
        preset_options("--preset", "fast")
    with pytest.raises(UsageError, match="--promotion-profile: unknown profile 'huge'"):
        preset_options("--promotion-profile", "huge")
