"""The evolve mind derives children by real changes, follows references and avoids what failed."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.researcher import genome
from services.researcher.mind import Candidate, EvolveMind, Reference
from services.researcher.novelty import functional_fingerprint
from services.runtime.vocabulary import COMPONENTS

REPO_ROOT = Path(__file__).resolve().parents[2]
KEYS = [f"arch-{n:04d}" for n in range(12)]

GATED_DELTANET = Reference(
    id="cog-gated-deltanet",
    kind="cognition",
    tags=("update=delta", "decay=scalar", "family=gated-deltanet"),
    text="Gating and the delta rule are complementary: the gate erases quickly, the delta rule edits precisely. "
    "More detail follows.",
    score=0.82,
)


@pytest.fixture
def mind() -> EvolveMind:
    return EvolveMind(seed=7)


@pytest.fixture
def seed_parent(mind: EvolveMind) -> Candidate:
    seed = mind.seed_proposal()
    return Candidate(arch_id="arch-0000", name=seed.name, code=seed.code, fitness=0.5)


def changed_axes(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {axis for axis in COMPONENTS if before[axis] != after[axis]}


def test_the_seed_is_deltanet(mind):
    seed = mind.seed_proposal()
    assert seed.origin == "seed" and seed.citations == ()
    assert seed.components == genome.SEED_COMPONENTS
    assert genome.components_of(seed.code) == genome.SEED_COMPONENTS
    assert "DeltaNet" in seed.motivation


def test_children_of_the_seed_differ_from_it_in_code_and_function(mind, seed_parent):
    seed_fingerprint = functional_fingerprint(seed_parent.code)
    for key in KEYS[:6]:
        child = mind.propose(seed_parent, [], key=key)
        assert child.origin == "original" and child.citations == ()
        assert child.code != seed_parent.code
        assert 1 <= len(changed_axes(genome.SEED_COMPONENTS, child.components)) <= 4  # 2 changes + follow-ups
        assert genome.components_of(child.code) == child.components
        assert functional_fingerprint(child.code) != seed_fingerprint, child.mutation


def test_the_same_key_gives_the_same_proposal_and_keys_vary_it(mind, seed_parent):
    first = mind.propose(seed_parent, [GATED_DELTANET], key="arch-0042")
    again = EvolveMind(seed=7).propose(seed_parent, [GATED_DELTANET], key="arch-0042")
    assert first == again
    assert len({genome.signature(mind.propose(seed_parent, [], key=key).components) for key in KEYS}) > 3


def test_a_replay_in_another_process_reproduces_the_proposal(mind, seed_parent):
    # Replays run in fresh processes, where Python's string hashing is seeded differently.
    script = (
        "import sys, json; sys.path.insert(0, '.')\n"
        "from services.researcher.mind import Candidate, EvolveMind, Reference\n"
        "mind = EvolveMind(seed=7)\n"
        "seed = mind.seed_proposal()\n"
        "parent = Candidate('arch-0000', seed.name, seed.code, 0.5)\n"
        "refs = [Reference(**json.loads(sys.argv[1]))]\n"
        "print(json.dumps([mind.propose(parent, refs, key=k).code for k in sys.argv[2:]]))\n"
    )
    reference = json.dumps({**dataclasses.asdict(GATED_DELTANET), "tags": list(GATED_DELTANET.tags)})
    result = subprocess.run(
        [sys.executable, "-c", script, reference, *KEYS[:4]],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )
    expected = [mind.propose(seed_parent, [GATED_DELTANET], key=key).code for key in KEYS[:4]]
    assert json.loads(result.stdout) == expected


def test_literature_tags_drive_the_change_and_are_cited(mind, seed_parent):
    for key in KEYS:
        child = mind.propose(seed_parent, [GATED_DELTANET], key=key)
        # decay=scalar is the only tag of the entry the seed lacks.
        assert child.components["decay"] == "scalar"
        assert child.origin == "literature"
        assert child.citations == ("cog-gated-deltanet",)
        assert "cog-gated-deltanet" in child.motivation and "decay" in child.motivation
        assert "cog-gated-deltanet" in child.mutation


def test_an_experience_that_improved_is_followed_and_cited(mind, seed_parent):
    improved = Reference("exp-17", "experience", ("gate=output",), "An output gate helped.", 0.7, "improved")
    child = mind.propose(seed_parent, [improved], key="arch-0100")
    assert child.components["gate"] == "output"
    assert child.origin == "experience" and child.citations[0] == "exp-17"


def test_values_that_regressed_or_failed_are_never_introduced(mind, seed_parent):
    regressed = Reference("exp-3", "experience", ("decay=scalar",), "Scalar decay hurt recall.", 0.9, "regressed")
    failed = Reference("exp-4", "experience", ("path=local_global",), "The local path timed out.", 0.6, "failed")
    for key in KEYS:
        child = mind.propose(seed_parent, [GATED_DELTANET, regressed, failed], key=key)
        assert child.components["decay"] != "scalar"
        assert child.components["path"] != "local_global"
        assert "exp-3" in child.motivation


def test_nothing_in_avoid_is_proposed_by_signature_or_by_fingerprint(mind, seed_parent):
    followed = mind.propose(seed_parent, [GATED_DELTANET], key="arch-0200")
    tried_signature = genome.signature(followed.components)
    by_signature = mind.propose(seed_parent, [GATED_DELTANET], key="arch-0200", avoid={tried_signature})
    assert genome.signature(by_signature.components) != tried_signature

    # The same design under another name and motivation is the same function.
    renamed = genome.render(followed.components, "someone-elses-name", "Written elsewhere.")
    tried_fingerprint = functional_fingerprint(renamed)
    by_fingerprint = mind.propose(seed_parent, [GATED_DELTANET], key="arch-0200", avoid={tried_fingerprint})
    assert functional_fingerprint(by_fingerprint.code) != tried_fingerprint


def test_when_every_single_change_was_tried_the_mind_says_so(mind, seed_parent):
    every_child = {
        genome.signature(genome.make_valid({**genome.SEED_COMPONENTS, axis: value}, keep=axis))
        for axis, values in COMPONENTS.items()
        for value in values
    }
    with pytest.raises(RuntimeError, match="every single change"):
        mind.propose(seed_parent, [GATED_DELTANET], key="arch-0300", avoid=every_child)


def test_a_parent_without_a_genome_is_refused(mind):
    stranger = Candidate("arch-9", "hand-written", "import torch\n", 0.1)
    with pytest.raises(ValueError, match="not rendered from a genome"):
        mind.propose(stranger, [], key="arch-0400")


def as_candidate(components: dict[str, str]) -> Candidate:
    name = genome.name_of(components)
    return Candidate("arch-0500", name, genome.render(components, name, "under test"), 0.3)


@pytest.mark.parametrize(
    ("broken", "failure_kind", "axis", "safer"),
    [
        ({"path": "local_global"}, "timeout", "path", "single"),
        ({"path": "local_global"}, "memory", "path", "single"),
        ({"path": "local_global"}, "non_causal", "path", "single"),
        ({"path": "local_global"}, "quadratic", "path", "single"),
        ({"gate": "output"}, "params_out_of_budget", "gate", "none"),
        ({"beta_range": "0_2"}, "non_finite", "beta_range", "0_1"),
        ({"update": "linear", "decay": "vector"}, "timeout", "decay", "scalar"),
    ],
)
def test_repair_returns_a_safer_variant_that_differs(mind, broken, failure_kind, axis, safer):
    components = {**genome.SEED_COMPONENTS, **broken}
    repaired = mind.repair(as_candidate(components), failure_kind, "Traceback: it went wrong", key="arch-0501")
    assert repaired is not None
    assert repaired.components[axis] == safer
    assert repaired.code != as_candidate(components).code
    assert genome.components_of(repaired.code) == repaired.components
    assert failure_kind in repaired.mutation and "arch-0500" in repaired.motivation


def test_repair_declines_what_it_cannot_help(mind):
    safe_linear = {**genome.SEED_COMPONENTS, "update": "linear", "qk_norm": "l2", "out_norm": "rms"}
    assert mind.repair(as_candidate(safe_linear), "non_finite", "nan loss", key="k") is None
    assert mind.repair(as_candidate(genome.SEED_COMPONENTS), "syntax_error", "bad", key="k") is None
    assert mind.repair(Candidate("arch-9", "hand-written", "import torch\n", 0.1), "timeout", "", key="k") is None
