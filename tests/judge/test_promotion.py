"""The promotion test on hand-made per-seed numbers: a clear win is SOTA, a tie within seed noise
and a loss are not, and which candidates are re-run at all."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from services.judge.fitness import squash
from services.judge.promotion import (
    TERM_FLOOR,
    PromotionConfig,
    choose,
    decide,
    first_stage_seeds,
    paired_test,
    screen,
    standing,
    stated_test,
)

SEEDS = (0, 1, 2)
DELTANET = {0: (2.30, 0.40), 1: (2.34, 0.38), 2: (2.27, 0.43)}
GATED = {0: (2.10, 0.30), 1: (2.14, 0.33), 2: (2.12, 0.28)}


def per_seed(candidate: dict[int, tuple[float, float]]) -> dict[str, dict[int, dict[str, float]]]:
    table = {"cand": candidate, "deltanet": DELTANET, "gated_deltanet": GATED}
    return {arch: {s: {"val_loss": v[0], "benchmark_mean": v[1]} for s, v in rows.items()}
            for arch, rows in table.items()}


def test_a_clear_win_over_both_baselines_is_sota() -> None:
    win = {0: (2.00, 0.50), 1: (2.03, 0.49), 2: (1.99, 0.52)}
    sota, statistics, decision = decide(per_seed(win), "cand", ["deltanet", "gated_deltanet"])
    assert sota and decision.startswith("SOTA")
    assert set(statistics) == {"deltanet/val_loss", "deltanet/benchmark_mean", "gated_deltanet/val_loss",
                               "gated_deltanet/benchmark_mean"}
    gated_loss = statistics["gated_deltanet/val_loss"]
    assert gated_loss["differences"] == pytest.approx([0.10, 0.11, 0.13]) and gated_loss["p"] < 0.05


def test_a_tie_within_seed_noise_is_not_sota() -> None:
    # Gated DeltaNet's own losses give or take its seed spread: better on one seed, worse on another.
    tie = {0: (2.08, 0.45), 1: (2.17, 0.44), 2: (2.11, 0.46)}
    sota, statistics, decision = decide(per_seed(tie), "cand", ["deltanet", "gated_deltanet"])
    assert not sota and "val_loss against gated_deltanet" in decision
    assert statistics["gated_deltanet/val_loss"]["p"] > 0.05
    assert statistics["deltanet/benchmark_mean"]["passed"]  # the other metric's win does not rescue it


def test_a_loss_is_not_sota() -> None:
    loss = {0: (2.50, 0.20), 1: (2.55, 0.22), 2: (2.48, 0.19)}
    sota, statistics, _ = decide(per_seed(loss), "cand", ["deltanet", "gated_deltanet"])
    assert not sota and not any(s["passed"] for s in statistics.values())
    assert all(s["p"] > 0.9 for s in statistics.values())


def test_the_t_statistic_matches_its_definition_and_zero_spread_is_decided_by_sign() -> None:
    result = paired_test([0.1, 0.2, 0.3])
    assert result["t"] == pytest.approx(0.2 / (0.1 / 3 ** 0.5)) and result["n"] == 3
    assert paired_test([0.1, 0.1, 0.1])["passed"] and not paired_test([0.0, 0.0, 0.0])["passed"]
    assert not paired_test([-0.1, -0.1, -0.1])["passed"]


def test_only_candidates_above_every_baseline_are_re_run_top_k_and_then_only_new_bests() -> None:
    config = PromotionConfig(top_k=1, seeds=3)
    even = {"loss": 0.5, "benchmark": 0.5, "quality": 0.5}
    assert choose(0.49, even, 0.5, [], 0, config) == ""  # below the baselines: never
    assert "top 1" in choose(0.55, even, 0.5, [], 0, config)
    assert choose(0.54, even, 0.5, [0.55], 1, config) == ""  # the top k is full and it is not a new best
    assert "best of the run so far" in choose(0.60, even, 0.5, [0.55], 1, config)
    assert "top 1" in choose(0.30, even, 0.5, [], 0, PromotionConfig(top_k=1, above_baselines=False))
    with pytest.raises(ValueError):
        PromotionConfig(seeds=1)


def test_a_denied_candidate_no_longer_sets_the_bar_for_new_bests() -> None:
    config = PromotionConfig(top_k=1, seeds=3)
    even = {"loss": 0.5, "benchmark": 0.5, "quality": 0.5}
    run = [SimpleNamespace(fitness=0.70, promotion={"status": "denied"}),
           SimpleNamespace(fitness=0.58, promotion={"status": "requested"}),
           SimpleNamespace(fitness=0.56, promotion={}),
           SimpleNamespace(fitness=None, promotion={})]  # not judged yet
    assert standing(run) == [0.58, 0.56]
    assert "previous best 0.5800" in choose(0.60, even, 0.5, standing(run), 1, config)
    assert choose(0.57, even, 0.5, standing(run), 1, config) == ""


def test_a_candidate_far_behind_a_baseline_on_one_term_is_not_re_run_however_fit() -> None:
    config = PromotionConfig(top_k=3, seeds=3)
    # The first discovery run's promotions: recall well above DeltaNet's, loss 14% behind Gated DeltaNet's.
    behind_on_loss = {"loss": squash(-0.14), "benchmark": squash(0.09), "quality": 0.9}
    fitness = sum(behind_on_loss.values()) / 3
    assert fitness > 0.334 and behind_on_loss["loss"] < TERM_FLOOR
    assert choose(fitness, behind_on_loss, 0.334, [], 0, config) == ""
    within_reach = {**behind_on_loss, "loss": squash(-0.04)}  # 4% behind: inside seed noise at exploration
    assert within_reach["loss"] >= TERM_FLOOR
    assert "top 3" in choose(sum(within_reach.values()) / 3, within_reach, 0.334, [], 0, config)
    # With eligibility off (tests that promote a weak tiny candidate), the floor is off too.
    assert "top 3" in choose(fitness, behind_on_loss, 0.9, [], 0, PromotionConfig(above_baselines=False))


def first_seed(candidate: tuple[float, float]) -> dict[str, dict[int, dict[str, float]]]:
    return {arch: {0: rows[0]} for arch, rows in per_seed({0: candidate}).items()}


def test_the_screen_lets_through_only_a_candidate_better_than_every_baseline_on_both_metrics_on_its_seed() -> None:
    through, statistics, outcome = screen(first_seed((2.05, 0.45)), "cand", ["deltanet", "gated_deltanet"])
    assert through and outcome.startswith("through the screen on seed 0")
    assert statistics["gated_deltanet/val_loss"]["differences"] == pytest.approx([0.05])
    assert all(row["n"] == 1 and row["passed"] and row["p"] == 0.0 for row in statistics.values())
    # Better than Gated DeltaNet's benchmark and DeltaNet's loss, but not Gated DeltaNet's loss: out.
    through, statistics, outcome = screen(first_seed((2.12, 0.45)), "cand", ["deltanet", "gated_deltanet"])
    assert not through and outcome == ("not SOTA: screened out on seed 0, not better on val_loss against "
                                       "gated_deltanet (-0.0200)")
    assert [k for k, row in statistics.items() if not row["passed"]] == ["gated_deltanet/val_loss"]
    through, _, _ = screen(first_seed((2.10, 0.45)), "cand", ["deltanet", "gated_deltanet"])
    assert not through  # a tie is not better


def test_a_screened_promotion_starts_on_one_seed_and_says_so_in_its_test() -> None:
    assert first_stage_seeds(4, PromotionConfig(seeds=3)) == [4]
    assert first_stage_seeds(4, PromotionConfig(seeds=3, screen=False)) == [4, 5, 6]
    assert "screened first" in stated_test(PromotionConfig()) and "paired t-test" in stated_test(PromotionConfig())
    assert "screened" not in stated_test(PromotionConfig(screen=False))
