"""The leak rule's two checks on planted evidence: the trained model's causality at its full
length, and overlap between the validation and training splits."""

from __future__ import annotations

from pathlib import Path

from services.judge import leak
from tests.engineer import mixers
from tests.judge import planted
from tests.judge.leaky import LONG_RANGE_PEEK

BASELINES = {"deltanet": {"val_loss": 3.02}, "gated_deltanet": {"val_loss": 2.95}}


def test_the_rule_triggers_only_more_than_ten_percent_below_the_best_baseline() -> None:
    assert leak.trigger({"val_loss": 2.70}, BASELINES) is None  # 8.5% below Gated DeltaNet
    fired = leak.trigger({"val_loss": 0.81}, BASELINES)
    assert fired is not None and fired["best_baseline"] == "gated_deltanet"
    assert abs(fired["relative_gain"] - (2.95 - 0.81) / 2.95) < 1e-12


def test_a_trained_model_that_peeks_at_length_is_caught_and_a_causal_one_verified(tmp_path: Path) -> None:
    folder = planted.corpus(tmp_path / "corpus")
    data = tmp_path / "data"
    stored = data / "checkpoints"
    bad = leak.causality_recheck(LONG_RANGE_PEEK, stored / f"{planted.checkpoint(LONG_RANGE_PEEK, data)}.pt",
                                 "tiny", str(folder), data)
    assert bad["causal"] is False and bad["length"] == 144 and bad["leaking_positions"]
    assert bad["max_relative_change"] > 1e-2 and bad["checkpoint_code_matches"]
    good = leak.causality_recheck(mixers.CAUSAL_MEAN, stored / f"{planted.checkpoint(mixers.CAUSAL_MEAN, data)}.pt",
                                  "tiny", str(folder), data)
    assert good["causal"] is True and good["max_relative_change"] <= good["tolerance"]
    missing = leak.causality_recheck(mixers.CAUSAL_MEAN, stored / "nothing.pt", "tiny", str(folder), data)
    assert missing["causal"] is False and "missing" in missing["error"]
    overlap = leak.split_overlap(str(folder), data)
    assert leak.verdict(bad, overlap)[0] == "leak" and leak.verdict(good, overlap)[0] == "verified"


def test_a_validation_file_copied_into_training_is_an_overlap(tmp_path: Path) -> None:
    clean = leak.split_overlap(str(planted.corpus(tmp_path / "clean")), tmp_path / "d1")
    assert not clean["overlaps"] and clean["duplicate_files"] == [] and clean["ngram_share"] == 0.0
    dirty = leak.split_overlap(str(planted.corpus(tmp_path / "dirty", duplicate=True)), tmp_path / "d2")
    assert dirty["overlaps"] and len(dirty["duplicate_files"]) == 1 and dirty["ngram_share"] > 0
    verdict, reason = leak.verdict({"causal": True, "length": 144, "max_relative_change": 0.0}, dirty)
    assert verdict == "leak" and "overlaps training" in reason


def test_the_default_corpus_has_no_overlap_that_counts(tmp_path: Path) -> None:
    """The standard library holds a few tiny identical files on both sides (empty __init__.py):
    recorded as evidence, too short to count."""
    overlap = leak.split_overlap("", tmp_path)
    assert not overlap["overlaps"], overlap
    assert all(d["bytes"] < leak.MIN_FILE_BYTES for d in overlap["duplicate_files"])
