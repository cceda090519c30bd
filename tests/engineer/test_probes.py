"""Each pre-flight probe, on a candidate that breaks its rule, and the valid ones that pass them all."""

from __future__ import annotations

import pytest

from services.engineer.baselines import BASELINES, baseline_code
from services.engineer.harness import check_code
from tests.engineer import mixers

PROBES = ["build", "forward_backward", "finite", "causal", "complexity", "params"]


def assert_fails_at(report: dict, check: str, kind: str) -> None:
    assert not report["ok"]
    assert report["errors"][0]["kind"] == kind, report["errors"]
    assert report["errors"][0]["message"]
    assert not report["checks"][check]["ok"]
    # Checks that could not run because this one failed are absent.
    assert list(report["checks"]) == PROBES[: PROBES.index(check) + 1]


def test_a_valid_mixer_passes_every_probe_with_measurements() -> None:
    report = check_code(mixers.CAUSAL_MEAN)
    assert report["ok"], report["errors"]
    assert list(report["checks"]) == PROBES and report["errors"] == []
    checks = report["checks"]
    assert checks["forward_backward"]["shapes"] == [[1, 37], [3, 64]]
    assert checks["causal"]["max_relative_change"] <= checks["causal"]["tolerance"]
    assert checks["complexity"]["exponent"] < 1.2 and not checks["complexity"]["quadratic"]
    assert len(checks["complexity"]["lengths"]) >= 2 and len(checks["complexity"]["seconds"]) >= 2
    assert checks["params"]["params"] == 4 * 64 * 64


def test_a_mixer_that_reads_the_future_is_non_causal() -> None:
    report = check_code(mixers.FUTURE_SUM)
    assert_fails_at(report, "causal", "non_causal")
    assert report["checks"]["causal"]["leaking_positions"][0] == 0


def test_a_mixer_that_depends_on_the_sequence_length_is_non_causal() -> None:
    report = check_code(mixers.BY_LENGTH)
    assert_fails_at(report, "causal", "non_causal")
    assert report["checks"]["causal"]["leaking_positions"] == []  # no single later token moves it
    assert report["checks"]["causal"]["prefix_change"] > 0.1


def test_a_mixer_that_mixes_rows_of_the_batch_is_non_causal() -> None:
    report = check_code(mixers.BATCH_CENTRED)
    assert_fails_at(report, "causal", "non_causal")
    assert "batch" in report["errors"][0]["message"]


def test_a_score_matrix_is_quadratic() -> None:
    report = check_code(mixers.MATMUL_ATTENTION)
    assert_fails_at(report, "complexity", "quadratic")
    assert report["checks"]["complexity"]["exponent"] > 1.8


def test_a_loop_over_prefixes_is_quadratic_without_any_matmul() -> None:
    report = check_code(mixers.PREFIX_LOOP)
    assert_fails_at(report, "complexity", "quadratic")
    assert report["checks"]["complexity"]["exponents"]["memory"] > 1.8


def test_non_finite_outputs_are_caught() -> None:
    assert_fails_at(check_code(mixers.NON_FINITE), "finite", "non_finite")


def test_a_mixer_far_above_the_parameter_budget_is_refused() -> None:
    report = check_code(mixers.TOO_MANY_PARAMS)
    assert_fails_at(report, "params", "params_out_of_budget")
    assert report["checks"]["params"]["ratio"] > 1.5


def test_the_budget_is_judged_at_the_profile_width_when_one_is_named() -> None:
    report = check_code(mixers.CAUSAL_MEAN, profile="cpu")
    assert report["ok"], report["errors"]
    assert report["checks"]["params"]["d_model"] == 128
    assert report["checks"]["params"]["params"] == 4 * 128 * 128


def test_a_wrong_output_shape_is_a_runtime_error() -> None:
    report = check_code(mixers.WRONG_SHAPE)
    assert_fails_at(report, "forward_backward", "runtime_error")
    assert "shape" in report["errors"][0]["message"]


def test_parameters_the_output_never_reaches_are_dead_weight() -> None:
    report = check_code(mixers.DEAD_WEIGHTS)
    assert_fails_at(report, "forward_backward", "unused_parameters")
    assert report["checks"]["forward_backward"]["unused"] == ["unused.weight", "unused.bias"]
    assert "unused.weight, unused.bias (4160 values)" in report["errors"][0]["message"]


@pytest.mark.parametrize("code", [mixers.BROKEN_INIT, mixers.NO_MIXER_CLASS], ids=["raises", "no_mixer"])
def test_code_that_cannot_build_a_mixer_is_a_build_error(code: str) -> None:
    report = check_code(code)
    assert_fails_at(report, "build", "build_error")
    assert report["errors"][0]["traceback"]


def test_a_syntax_error_names_the_line() -> None:
    report = check_code(mixers.SYNTAX_ERROR)
    assert report["errors"][0]["kind"] == "syntax_error"
    assert "line 3" in report["errors"][0]["message"]


@pytest.mark.parametrize("name", [b for b in BASELINES if b != "softmax_attention"])
def test_each_linear_baseline_builds_and_passes_every_probe(name: str) -> None:
    report = check_code(baseline_code(name))
    assert report["ok"], report["errors"]
    assert list(report["checks"]) == PROBES
    assert report["checks"]["complexity"]["exponent"] < 1.2


def test_softmax_attention_is_exempt_from_the_complexity_probe_and_reported_quadratic() -> None:
    report = check_code(baseline_code("softmax_attention"))
    assert report["ok"], report["errors"]
    complexity = report["checks"]["complexity"]
    assert complexity["exempt"] and complexity["quadratic"] and complexity["exponent"] > 1.8


def test_the_exemption_belongs_to_the_reference_file_alone() -> None:
    edited = baseline_code("softmax_attention").replace("std=0.02", "std=0.021")
    assert_fails_at(check_code(edited), "complexity", "quadratic")
