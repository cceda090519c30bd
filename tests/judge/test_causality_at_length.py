"""The causal probe at the training length rejects, before any training, a mixer that only looks
ahead on inputs longer than the short probe's."""

from __future__ import annotations

from pathlib import Path

import torch

from services.engineer import probes
from services.engineer.harness import check_code
from services.engineer.profiles import get_profile
from services.engineer.sandbox_child import load_mixer
from tests.engineer import mixers
from tests.judge.leaky import LONG_RANGE_PEEK, PEEK_AFTER


def build(code: str, d_model: int = 64) -> torch.nn.Module:
    return load_mixer(code, Path("candidate.py"))(d_model, 2)


def test_the_short_probe_alone_passes_the_long_range_peek() -> None:
    assert probes.check_causal(build(LONG_RANGE_PEEK))["ok"]


def test_the_check_at_length_catches_it_and_passes_a_causal_mixer() -> None:
    length = probes.training_length(get_profile("tiny"))
    assert length == 144 > PEEK_AFTER  # tiny's longest sequence is the hard MQAR tier
    try:
        probes.check_causal_at_length(build(LONG_RANGE_PEEK), length, 64)
    except probes.ProbeFailure as failure:
        assert failure.kind == "non_causal" and "training length 144" in str(failure)
        assert failure.result["leaking_positions"] and failure.result["length"] == 144
    else:
        raise AssertionError("the long-range peek passed the check at length")
    passed = probes.check_causal_at_length(build(mixers.CAUSAL_MEAN), length, 64)
    assert passed["ok"] and passed["length"] == 144 and passed["prefix_change"] <= passed["tolerance"]


def test_the_sandboxed_pre_flight_rejects_it_at_the_profiles_length() -> None:
    report = check_code(LONG_RANGE_PEEK, profile="tiny")
    assert not report["ok"] and report["errors"][0]["kind"] == "non_causal"
    causal = report["checks"]["causal"]
    assert not causal["ok"] and causal["length"] == 144 and causal["leaking_positions"]
    assert list(report["checks"]) == ["build", "forward_backward", "finite", "causal"]  # stopped before training
    valid = check_code(mixers.CAUSAL_MEAN, profile="tiny")
    assert valid["ok"] and valid["checks"]["causal"]["at_length"]["length"] == 144
