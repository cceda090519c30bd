"""Fitness against both baselines: 0.5 means "as good as the stronger baseline on that term",
each term moves the right way with its measurement, and every input is in the detail."""

from __future__ import annotations

import random

import pytest

from services.judge.fitness import Context, complexity_factor, judge, squash

DELTANET = {"val_loss": 2.30, "benchmark_mean": 0.40, "flops_per_token": 4.0e6, "tokens_per_s": 5000.0,
            "params": 100_000}
GATED = {"val_loss": 2.10, "benchmark_mean": 0.30, "flops_per_token": 5.0e6, "tokens_per_s": 4000.0,
         "params": 110_000}
BOTH = {"deltanet": DELTANET, "gated_deltanet": GATED}


def test_a_baseline_against_itself_scores_one_half_on_every_term() -> None:
    verdict = judge(DELTANET, {"deltanet": DELTANET})
    assert verdict.fitness == 0.5 and set(verdict.terms.values()) == {0.5}


def test_each_term_rewards_its_own_improvement_and_punishes_its_regression() -> None:
    for key, better, worse, term in (("val_loss", 2.2, 2.4, "loss"), ("benchmark_mean", 0.5, 0.3, "benchmark"),
                                     ("flops_per_token", 3.0e6, 5.0e6, "quality")):
        assert judge({**DELTANET, key: better}, {"deltanet": DELTANET}).terms[term] > 0.5
        assert judge({**DELTANET, key: worse}, {"deltanet": DELTANET}).terms[term] < 0.5


def test_each_term_is_taken_against_the_stronger_baseline_on_that_term() -> None:
    candidate = {"val_loss": 2.20, "benchmark_mean": 0.35, "flops_per_token": 4.5e6, "tokens_per_s": 4500.0,
                 "params": 100_000}
    verdict = judge(candidate, BOTH)
    # Loss: Gated DeltaNet's 2.10 is stronger, so 2.20 scores below one half although it beats DeltaNet.
    assert verdict.detail["decided_by"]["loss"] == "gated_deltanet" and verdict.terms["loss"] < 0.5
    assert verdict.terms["loss"] == squash((2.10 - 2.20) / 2.10)
    # Benchmark: DeltaNet's 0.40 is stronger.
    assert verdict.detail["decided_by"]["benchmark"] == "deltanet"
    assert verdict.terms["benchmark"] == squash(0.35 - 0.40)
    # Quality: costlier than DeltaNet (the cheaper one) scores lower against it than against Gated DeltaNet.
    assert verdict.detail["decided_by"]["quality"] == "deltanet"
    per = verdict.detail["per_baseline"]
    assert per["deltanet"]["quality"]["score"] < per["gated_deltanet"]["quality"]["score"]
    # Every term's inputs are there for each baseline, and the rationale names the deciding one.
    for name in BOTH:
        assert set(per[name]) == {"loss", "benchmark", "quality"}
        assert per[name]["loss"]["baseline_val_loss"] == BOTH[name]["val_loss"]
    assert "of gated_deltanet" in verdict.rationale and abs(verdict.fitness - sum(verdict.terms.values()) / 3) < 1e-12


def test_beating_both_baselines_on_every_term_scores_above_one_half_on_each() -> None:
    verdict = judge({"val_loss": 2.0, "benchmark_mean": 0.5, "flops_per_token": 3.0e6, "tokens_per_s": 6000.0,
                     "params": 100_000}, BOTH)
    assert all(score > 0.5 for score in verdict.terms.values())


def test_measured_tokens_per_second_is_recorded_but_does_not_move_the_fitness() -> None:
    # The same experiment timed on a busy and on an idle machine: one verdict, both timings kept.
    busy, idle = judge({**DELTANET, "tokens_per_s": 2500.0}, BOTH), judge({**DELTANET, "tokens_per_s": 9000.0}, BOTH)
    assert busy.fitness == idle.fitness and busy.terms == idle.terms
    inputs = busy.detail["per_baseline"]["deltanet"]["quality"]["inputs"]
    assert inputs["measured_speed_ratio"] == 0.5 and inputs["speed_ratio"] == 1.0
    assert "0.50x measured" in busy.rationale


def test_fitness_is_monotonic_in_loss_over_random_baselines() -> None:
    for _ in range(50):
        bases = {"a": {**DELTANET, "val_loss": random.uniform(1.0, 4.0)},
                 "b": {**GATED, "val_loss": random.uniform(1.0, 4.0)}}
        losses = sorted(random.uniform(0.8, 4.5) for _ in range(5))
        scores = [judge({**DELTANET, "val_loss": loss}, bases).fitness for loss in losses]
        assert scores == sorted(scores, reverse=True)


def test_terms_saturate_about_ten_percent_from_the_baseline() -> None:
    assert squash(0.10) > 0.97 and squash(-0.10) < 0.03
    assert abs(squash(0.0) - 0.5) < 1e-12
    far = judge({**DELTANET, "val_loss": 2.30 * 0.5, "benchmark_mean": 0.40 + 0.5}, {"deltanet": DELTANET})
    near = judge({**DELTANET, "val_loss": 2.30 * 0.88, "benchmark_mean": 0.40 + 0.12}, {"deltanet": DELTANET})
    assert far.terms["loss"] - near.terms["loss"] < 0.01 and far.terms["benchmark"] - near.terms["benchmark"] < 0.01


def test_parameter_drift_complexity_and_repetition_discount_the_measured_quality() -> None:
    bases = {"deltanet": DELTANET}
    plain = judge(DELTANET, bases).terms["quality"]
    assert judge({**DELTANET, "params": 150_000}, bases).terms["quality"] < plain
    steep = judge(DELTANET, bases, context=Context(complexity_exponent=1.4)).terms["quality"]
    assert steep < plain and complexity_factor(1.0) == 1.0 and complexity_factor(1.5) == 0.0
    twin = judge(DELTANET, bases, context=Context(same_function_as="arch-x")).terms["quality"]
    assert twin == plain / 2
    assert judge(DELTANET, bases, context=Context(novelty_axes=2)).terms["quality"] == plain


def test_code_that_embeds_close_to_an_earlier_design_counts_less_novel() -> None:
    bases = {"deltanet": DELTANET}
    plain = judge(DELTANET, bases).terms["quality"]
    far = judge(DELTANET, bases, context=Context(novelty_axes=3, code_distance=0.4))
    half = judge(DELTANET, bases, context=Context(novelty_axes=1, code_distance=0.05))
    copy = judge(DELTANET, bases, context=Context(novelty_axes=1, code_distance=0.0))
    assert far.terms["quality"] == plain  # past NOVEL_CODE_DISTANCE: fully new
    assert copy.terms["quality"] == pytest.approx(plain * 0.75)
    assert half.terms["quality"] == pytest.approx(plain * 0.875)
    assert half.detail["per_baseline"]["deltanet"]["quality"]["inputs"]["code_distance"] == 0.05
    # The same function still counts half, whatever its code looks like.
    assert judge(DELTANET, bases, context=Context(same_function_as="a", code_distance=0.5)).terms["quality"] \
        == plain / 2


def test_an_llm_score_replaces_the_measured_quality_term() -> None:
    rubric = judge(DELTANET, BOTH, quality=(0.9, "rubric 9/10"))
    assert rubric.terms["quality"] == 0.9 and "rubric 9/10" in rubric.rationale
    assert rubric.detail["decided_by"]["quality"] == "rubric" and rubric.detail["quality_source"] == "rubric"
