"""Fitness against the baseline: 0.5 means "as good as the baseline", and each term moves
the right way with its measurement."""

from __future__ import annotations

import random

from services.judge.fitness import judge, squash

BASELINE = {"val_loss": 2.30, "benchmark_mean": 0.40, "tokens_per_s": 5000.0, "params": 100_000}


def test_the_baseline_against_itself_scores_one_half_on_every_term() -> None:
    verdict = judge(BASELINE, BASELINE)
    assert verdict.fitness == 0.5 and set(verdict.terms.values()) == {0.5}


def test_each_term_rewards_its_own_improvement_and_punishes_its_regression() -> None:
    for key, better, worse, term in (("val_loss", 2.2, 2.4, "loss"), ("benchmark_mean", 0.5, 0.3, "benchmark"),
                                     ("tokens_per_s", 6000.0, 4000.0, "quality")):
        assert judge({**BASELINE, key: better}, BASELINE).terms[term] > 0.5
        assert judge({**BASELINE, key: worse}, BASELINE).terms[term] < 0.5


def test_fitness_is_monotonic_in_loss_over_random_baselines() -> None:
    for _ in range(50):
        base = {**BASELINE, "val_loss": random.uniform(1.0, 4.0)}
        losses = sorted(random.uniform(0.8, 4.5) for _ in range(5))
        scores = [judge({**base, "val_loss": loss}, base).fitness for loss in losses]
        assert scores == sorted(scores, reverse=True)


def test_terms_saturate_about_ten_percent_from_the_baseline() -> None:
    assert squash(0.10) > 0.97 and squash(-0.10) < 0.03
    assert abs(squash(0.0) - 0.5) < 1e-12


def test_parameter_drift_discounts_quality_and_an_llm_score_replaces_it() -> None:
    bloated = judge({**BASELINE, "params": 150_000}, BASELINE)
    assert bloated.terms["quality"] < 0.5 and "+50.0% off" in bloated.rationale
    rubric = judge(BASELINE, BASELINE, quality=(0.9, "rubric 9/10"))
    assert rubric.terms["quality"] == 0.9 and "rubric 9/10" in rubric.rationale
