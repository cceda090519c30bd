"""A real offline run (no LLM, tiny profile, 10 experiments) shows in its log what the evolve
mind is for: all three origins, a crossover, a changed initialisation, and the parent strategy
with its numbers on every proposal. Real nats-server, Qdrant, embeddings and training."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from services.engineer.baselines import baseline_path
from services.researcher.genome import BASELINES, INIT_AXES, canonical
from services.researcher.mind import OPERATORS
from services.runtime.logfile import fold, read_file
from services.runtime.projection import Projection

pytestmark = pytest.mark.slow


def done_when(projection: Projection, strategy: str) -> None:
    """The issue's "done when" for one run's log."""
    run = projection.latest_run()
    assert run is not None and run.finished and run.parent_strategy == strategy
    archs = projection.of_run(run.run_id)
    children = [a for a in archs if a.operator in OPERATORS]
    assert {"cognition", "experience", "original"} <= {a.origin for a in children}
    crossovers = [a for a in children if a.operator == "crossover"]
    assert crossovers and all(len(a.parents) == 2 for a in crossovers)
    changed_init = [
        a for a in children
        if any(a.components[axis] != projection.archs[a.parents[0]].components[axis] for axis in INIT_AXES)
    ]
    assert changed_init, "no proposal changed an initialisation"
    for arch in children:
        assert arch.parent_strategy == strategy and arch.selection.get("phase") in ("cold_start", "ranked"), arch
        assert arch.parent_selection and arch.mutation.startswith(arch.operator)


def test_a_tiny_run_of_ten_shows_every_origin_a_crossover_and_a_changed_initialisation(tmp_path: Path) -> None:
    data = tmp_path / "asi"
    result = subprocess.run(
        [sys.executable, "-m", "services.cli", "run", "--profile", "tiny", "--experiments", "10",
         "--data-dir", str(data), "--parent-strategy", "paper", "--json"],
        capture_output=True, text=True, timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    exported = tmp_path / "run.jsonl"
    subprocess.run([sys.executable, "-m", "services.cli", "events", "export", "--data-dir", str(data),
                    "-o", str(exported)], check=True, capture_output=True, timeout=120)
    done_when(fold(read_file(exported)), "paper")


def test_a_run_starts_from_seed_architectures_given_as_files(tmp_path: Path) -> None:
    data = tmp_path / "asi"
    gla = baseline_path("gla")
    result = subprocess.run(
        [sys.executable, "-m", "services.cli", "run", "--profile", "tiny", "--experiments", "3",
         "--data-dir", str(data), "--parent-strategy", "weighted", "--seed-arch", str(gla), "--json"],
        capture_output=True, text=True, timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    exported = tmp_path / "run.jsonl"
    subprocess.run([sys.executable, "-m", "services.cli", "events", "export", "--data-dir", str(data),
                    "-o", str(exported)], check=True, capture_output=True, timeout=120)
    projection = fold(read_file(exported))
    run = projection.latest_run()
    assert run is not None and [s["name"] for s in run.seed_architectures] == ["gla"]
    archs = projection.of_run(run.run_id)
    seeds = [a for a in archs if a.operator == "seed" and not a.is_baseline]
    assert len(seeds) == 1 and seeds[0].code == gla.read_text() and seeds[0].origin == "seed"
    assert seeds[0].components == canonical(BASELINES["gla"])  # read as its genome, by its text
    children = [a for a in archs if a.operator in OPERATORS]
    assert len(children) == 2
    baseline = projection.baseline(run.run_id)
    assert baseline is not None
    for child in children:
        assert child.selection["phase"] == "cold_start"
        assert set(child.selection["seeds"]) <= {baseline.arch_id, seeds[0].arch_id}
        assert set(child.parents) <= {baseline.arch_id, seeds[0].arch_id}
