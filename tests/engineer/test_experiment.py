"""A whole experiment on the seed architecture under ``tiny``: probes, training, evaluation, checkpoint.

It runs as a baseline run, so the same training also shows the baseline cache at work.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import pytest
import torch

from services.engineer.baselines import baseline_code
from services.engineer.harness import run_experiment
from services.engineer.profiles import PROFILES, get_profile
from services.engineer.reference import baseline_result, render_markdown, run_baselines, separation, summarise
from services.engineer.sandbox_child import SANDBOX_UIDS
from tests.engineer import mixers

PROBES = ("build", "forward_backward", "finite", "causal", "complexity", "params")


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, list[dict], Path]:
    data_dir = tmp_path_factory.mktemp("asi")
    progress: list[dict] = []
    result = baseline_result("deltanet", "tiny", 0, data_dir, on_progress=progress.append)
    return result, progress, data_dir


def test_the_seed_trains_and_is_evaluated(experiment: tuple[dict, list[dict], Path]) -> None:
    result, _, _ = experiment
    assert result["ok"], result.get("failure")
    # An untrained model scores ln(vocab) ~ 5.9 nats per byte; training must have taught it something.
    assert result["val_loss"] < 4.0
    assert set(result["benchmarks"]) == {"mqar", "mqar_hard", "selective_copying", "noisy_recall"}
    assert all(0.0 <= accuracy <= 1.0 for accuracy in result["benchmarks"].values())
    assert math.isclose(result["benchmark_mean"], sum(result["benchmarks"].values()) / 4)
    assert result["params"] > 0 and result["tokens_per_s"] > 0 and result["train_seconds"] > 0


def test_every_probe_ran_and_passed_before_training(experiment: tuple[dict, list[dict], Path]) -> None:
    result, _, _ = experiment
    assert list(result["checks"]) == list(PROBES)
    assert all(check["ok"] for check in result["checks"].values())
    assert result["checks"]["complexity"]["exponent"] < 1.5


def test_progress_reaches_the_parent_as_training_goes(experiment: tuple[dict, list[dict], Path]) -> None:
    _, progress, _ = experiment
    steps = get_profile("tiny").steps
    assert len(progress) >= 2
    assert [p["step"] for p in progress] == sorted(p["step"] for p in progress)
    assert progress[-1]["step"] == progress[-1]["steps"] == steps
    assert all(math.isfinite(p["train_loss"]) and p["tokens_per_s"] > 0 for p in progress)


def test_the_checkpoint_is_stored_by_content_hash_and_describes_itself(
    experiment: tuple[dict, list[dict], Path],
) -> None:
    result, _, data_dir = experiment
    path = data_dir / "checkpoints" / f"{result['checkpoint']}.pt"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == result["checkpoint"]
    checkpoint = torch.load(path, weights_only=False)
    assert checkpoint["code"] == baseline_code("deltanet")
    assert checkpoint["profile"] == "tiny" and checkpoint["seed"] == 0
    assert checkpoint["step"] == get_profile("tiny").steps
    assert {"model", "optimizer", "model_config", "val_loss"} <= set(checkpoint)


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users and making namespaces need root")
def test_the_sandbox_ran_as_nobody_without_network(experiment: tuple[dict, list[dict], Path]) -> None:
    result, _, _ = experiment
    assert result["isolation"]["uid"] in SANDBOX_UIDS
    assert result["isolation"]["network_isolated"] is True


def test_a_baseline_run_is_read_back_from_the_cache(experiment: tuple[dict, list[dict], Path]) -> None:
    first, _, data_dir = experiment
    assert not first["cached"]
    table = run_baselines("tiny", 1, data_dir, names=("deltanet",))
    again = table["baselines"]["deltanet"]
    assert again["runs"][0]["cached"] and again["runs"][0]["checkpoint"] == first["checkpoint"]
    assert again["val_loss"] == first["val_loss"] and again["params"] == first["params"]
    markdown = render_markdown(table, "asi-arch baselines --profile tiny --seeds 1")
    assert f"| deltanet | {first['val_loss']:.3f} (0.000) |" in markdown
    assert table["separation"] is None and "Separation" not in markdown  # one baseline separates nothing

    # Two seeds of a copy whose accuracies moved: the table shows the spread and says whether it separates.
    moved = {**first, "seed": 1, "benchmarks": {t: a + 0.01 for t, a in first["benchmarks"].items()},
             "benchmark_mean": first["benchmark_mean"] + 0.01}
    weak = {**first, "benchmark_mean": first["benchmark_mean"] - 0.5}
    entries = {"deltanet": {"runs": [first, moved], **summarise([first, moved])},
               "weak": {"runs": [weak], **summarise([weak])}}
    two = {**table, "seeds": 2, "baselines": entries, "separation": separation(entries)}
    markdown = render_markdown(two, "asi-arch baselines --profile tiny --seeds 2")
    assert f"{entries['deltanet']['benchmark_mean']:.3f} (0.010)" in markdown
    assert "Separation: best (deltanet) minus worst (weak) on the benchmark mean is 0.505, which exceeds" in markdown


def test_separation_compares_the_best_worst_gap_with_three_times_the_noisiest_seed_spread() -> None:
    def entry(mean: float, spread: float) -> dict:
        return {"ok": True, "benchmark_mean": mean, "benchmark_mean_spread": spread}

    split = separation({"a": entry(0.8, 0.05), "b": entry(0.2, 0.01), "c": entry(0.5, 0.19)})
    assert (split["best"], split["worst"], split["noisiest"]) == ("a", "b", "c")
    assert split["gap"] == pytest.approx(0.6) and split["separates"]  # 0.6 > 0.57
    assert not separation({"a": entry(0.8, 0.05), "b": entry(0.2, 0.21)})["separates"]  # 0.6 < 0.63
    assert separation({"a": entry(0.8, 0.0), "b": {"ok": False}}) is None


@pytest.mark.parametrize(("code", "kind"), [(mixers.FUTURE_SUM, "non_causal"), (mixers.MATMUL_ATTENTION, "quadratic")],
                         ids=["non_causal", "quadratic"])
def test_a_mixer_failing_a_probe_is_rejected_before_any_training(code: str, kind: str, tmp_path: Path) -> None:
    progress: list[dict] = []
    result = run_experiment(code, "tiny", 0, on_progress=progress.append, data_dir=tmp_path)
    assert not result["ok"] and result["failure"]["kind"] == kind
    assert not result["checks"][next(reversed(result["checks"]))]["ok"]
    assert progress == [] and not list((tmp_path / "checkpoints").glob("*.pt"))


def test_profiles_are_named_and_unknown_names_are_refused() -> None:
    assert set(PROFILES) == {"tiny", "explore", "explore-long", "cpu", "gpu-20m", "gpu-340m"}
    with pytest.raises(ValueError, match="tiny, cpu, explore, explore-long, gpu-20m, gpu-340m"):
        get_profile("huge")
