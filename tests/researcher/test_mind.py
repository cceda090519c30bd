"""The evolve mind: operators that take turns, follow references and experience, and stay valid."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.engineer.baselines import baseline_code
from services.engineer.profiles import get_profile
from services.researcher import genome
from services.researcher.experience import TagRecord
from services.researcher.mind import OPERATORS, Candidate, EvolveMind, Reference
from services.researcher.novelty import functional_fingerprint
from services.runtime.vocabulary import COMPONENTS, SCALES

REPO_ROOT = Path(__file__).resolve().parents[2]
KEYS = [f"arch-{n:04d}" for n in range(12)]
TINY = get_profile("tiny")
TURN = {operator: n for n, operator in enumerate(OPERATORS)}

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
    return EvolveMind(seed=7, budget=(TINY.d_model, TINY.n_heads))


@pytest.fixture
def seed_parent(mind: EvolveMind) -> Candidate:
    seed = mind.seed_proposal()
    return Candidate(arch_id="arch-0000", name=seed.name, code=seed.code, fitness=0.5)


def candidate(arch_id: str, components: dict[str, str], fitness: float) -> Candidate:
    name = genome.name_of(components)
    return Candidate(arch_id, name, genome.render(components, name, "under test"), fitness)


def changed_axes(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {axis for axis in COMPONENTS if before[axis] != after[axis]}


def test_the_seed_is_deltanet_to_the_fingerprint(mind):
    seed = mind.seed_proposal()
    assert seed.origin == "seed" and seed.citations == () and seed.operator == "seed"
    assert seed.components == genome.SEED_COMPONENTS
    assert genome.components_of(seed.code) == genome.SEED_COMPONENTS
    assert functional_fingerprint(seed.code) == functional_fingerprint(baseline_code("deltanet"))


def test_operators_take_turns_and_each_records_its_origin(mind, seed_parent):
    partner = candidate("arch-0001", genome.BASELINES["gated_deltanet"], 0.6)
    stats = {"gate=output": TagRecord(raised=("arch-0005", "arch-0006"))}
    seen = {}
    for operator, turn in TURN.items():
        child = mind.propose([seed_parent, partner], [GATED_DELTANET], stats, key=f"k{turn}", turn=turn)
        seen[operator] = child
        assert child.operator == operator
    assert seen["insert_cognition"].origin == "cognition"
    assert seen["insert_experience"].origin == "experience"
    assert seen["crossover"].origin == "experience"
    assert seen["mutate"].origin == seen["mutate_init"].origin == seen["mutate_width"].origin == "original"
    assert seen["crossover"].parent_ids == ("arch-0000", "arch-0001")
    assert all(len(child.parent_ids) == 1 for op, child in seen.items() if op != "crossover")


def test_an_operator_with_nothing_to_offer_gives_way_to_the_next(mind, seed_parent):
    # No partner: crossover's turn goes to experience insertion, and with no statistics, to mutation.
    child = mind.propose([seed_parent], [], {}, key="k", turn=TURN["crossover"])
    assert child.operator == "mutate" and child.parent_ids == ("arch-0000",)
    # No cognition entry: cognition's turn goes to the initialisation mutation.
    assert mind.propose([seed_parent], [], {}, key="k", turn=TURN["insert_cognition"]).operator == "mutate_init"


def test_children_differ_from_the_parent_in_code_and_function(mind, seed_parent):
    seed_fingerprint = functional_fingerprint(seed_parent.code)
    for n, key in enumerate(KEYS[:6]):
        child = mind.propose([seed_parent], [], {}, key=key, turn=n)
        assert child.code != seed_parent.code
        assert genome.components_of(child.code) == child.components
        assert functional_fingerprint(child.code) != seed_fingerprint, child.mutation


def test_the_same_key_gives_the_same_proposal_and_keys_vary_it(mind, seed_parent):
    first = mind.propose([seed_parent], [GATED_DELTANET], key="arch-0042", turn=4)
    again = EvolveMind(seed=7, budget=(TINY.d_model, TINY.n_heads)).propose(
        [seed_parent], [GATED_DELTANET], key="arch-0042", turn=4
    )
    assert first == again
    variety = {genome.signature(mind.propose([seed_parent], [], key=key, turn=4).components) for key in KEYS}
    assert len(variety) > 6


def test_a_replay_in_another_process_reproduces_the_proposal(mind, seed_parent):
    # Replays run in fresh processes, where Python's string hashing is seeded differently.
    script = (
        "import sys, json; sys.path.insert(0, '.')\n"
        "from services.researcher.mind import Candidate, EvolveMind, Reference\n"
        "mind = EvolveMind(seed=7, budget=(64, 2))\n"
        "seed = mind.seed_proposal()\n"
        "parent = Candidate('arch-0000', seed.name, seed.code, 0.5)\n"
        "refs = [Reference(**json.loads(sys.argv[1]))]\n"
        "print(json.dumps([mind.propose([parent], refs, key=k, turn=n).code for n, k in enumerate(sys.argv[2:])]))\n"
    )
    reference = json.dumps({**dataclasses.asdict(GATED_DELTANET), "tags": list(GATED_DELTANET.tags)})
    result = subprocess.run(
        [sys.executable, "-c", script, reference, *KEYS[:5]],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )
    expected = [mind.propose([seed_parent], [GATED_DELTANET], key=key, turn=n).code for n, key in enumerate(KEYS[:5])]
    assert json.loads(result.stdout) == expected


def test_cognition_insertion_follows_the_entry_and_cites_it(mind, seed_parent):
    for key in KEYS:
        child = mind.propose([seed_parent], [GATED_DELTANET], key=key, turn=TURN["insert_cognition"])
        # decay=scalar is the only tag of the entry the seed lacks.
        assert child.components["decay"] == "scalar"
        assert child.origin == "cognition" and child.citations == ("cog-gated-deltanet",)
        assert "cog-gated-deltanet" in child.motivation and "cog-gated-deltanet" in child.mutation


def test_softmax_is_never_proposed_even_when_an_entry_names_it(mind, seed_parent):
    transformer = Reference("cog-softmax", "cognition", ("update=softmax",), "Attention is all you need.", 0.99)
    for n, key in enumerate(KEYS):
        child = mind.propose([seed_parent], [transformer], key=key, turn=n)
        assert child.components["update"] != "softmax"


def test_experience_insertion_follows_what_raised_fitness_and_cites_those_experiments(mind, seed_parent):
    stats = {
        "gate=output": TagRecord(raised=("arch-0011", "arch-0012"), lowered=("arch-0013",)),
        "path=local_global": TagRecord(lowered=("arch-0014", "arch-0015")),
    }
    for key in KEYS:
        child = mind.propose([seed_parent], [], stats, key=key, turn=TURN["insert_experience"])
        assert child.operator == "insert_experience" and child.origin == "experience"
        assert child.components["gate"] == "output" and child.components["path"] == "single"
        assert {"arch-0011", "arch-0012"} <= set(child.citations)
        assert "raised fitness 2 time(s) and lowered it 1 time(s)" in child.motivation


def test_a_value_that_keeps_lowering_fitness_is_tried_less(seed_parent):
    mind = EvolveMind(seed=3)  # no budget: only the statistics differ between the two counts
    keys = [f"arch-{n:04d}" for n in range(120)]

    def proposals_with_rms_full(stats):
        return sum(
            mind.propose([seed_parent], [], stats, key=key, turn=TURN["mutate"]).components["out_norm"] == "rms_full"
            for key in keys
        )

    failing = {"out_norm=rms_full": TagRecord(lowered=("arch-0001", "arch-0002", "arch-0003"))}
    assert proposals_with_rms_full(failing) < proposals_with_rms_full({}) / 3


def test_mutation_moves_numbers_by_steps_on_their_scale(mind):
    gdn = candidate("arch-0100", genome.BASELINES["gated_deltanet"], 0.55)
    moved_scales = 0
    for key in KEYS:
        child = mind.propose([gdn], [], key=key, turn=TURN["mutate_init"])
        changed = changed_axes(genome.BASELINES["gated_deltanet"], child.components)
        assert changed and changed <= genome.INIT_AXES, child.mutation
        for axis in changed & SCALES:
            values = COMPONENTS[axis]
            step = values.index(child.components[axis]) - values.index(genome.BASELINES["gated_deltanet"][axis])
            assert 1 <= abs(step) <= 2, (axis, step)
            moved_scales += 1
    assert moved_scales >= 6  # the gate's ranges and the write-strength bias are what it mostly moves


def test_width_mutation_reshapes_the_state_within_the_budget(mind):
    gdn = candidate("arch-0150", genome.BASELINES["gated_deltanet"], 0.55)
    moved = set()
    for key in KEYS:
        child = mind.propose([gdn], [], key=key, turn=TURN["mutate_width"])
        changed = changed_axes(genome.BASELINES["gated_deltanet"], child.components)
        assert child.operator == "mutate_width" and changed and changed <= genome.WIDTH_AXES, child.mutation
        assert abs(genome.param_ratio(child.components, TINY.d_model, TINY.n_heads) - 1) <= genome.PARAM_TOLERANCE
        moved |= changed
    # Wider values come with narrower or shared keys: the budget pays for one with the other.
    assert {"expand_v", "qk_heads", "heads"} <= moved, moved


def test_crossover_takes_each_axis_from_a_parent_and_repairs_the_mix(mind):
    deltanet = candidate("arch-0200", genome.BASELINES["deltanet"], 0.5)
    gla = candidate("arch-0201", genome.BASELINES["gla"], 0.52)
    first, second = genome.BASELINES["deltanet"], genome.canonical(genome.BASELINES["gla"])
    for key in KEYS:
        child = mind.propose([deltanet, gla], [], key=key, turn=TURN["crossover"])
        assert child.operator == "crossover" and child.parent_ids == ("arch-0200", "arch-0201")
        assert not genome.problems(child.components)
        assert child.components not in (genome.canonical(first), second)
        inherited = sum(child.components[a] in (first[a], second[a]) for a in COMPONENTS)
        assert inherited >= len(COMPONENTS) - 3, child.mutation  # only the repair moves an axis elsewhere
        assert 0.5 <= genome.param_ratio(child.components, TINY.d_model, TINY.n_heads) <= 1.5


def test_every_proposal_is_within_the_parameter_budget(mind, seed_parent):
    product = Reference("cog-deltaproduct", "cognition", ("householder=3", "beta_range=0_2"), "Products help.", 0.9)
    for n, key in enumerate(KEYS):
        child = mind.propose([seed_parent], [product], key=key, turn=n)
        assert 0.5 <= genome.param_ratio(child.components, TINY.d_model, TINY.n_heads) <= 1.5, child.mutation


def test_nothing_in_avoid_is_proposed_by_signature_or_by_fingerprint(mind, seed_parent):
    followed = mind.propose([seed_parent], [GATED_DELTANET], key="arch-0200")
    tried_signature = genome.signature(followed.components)
    by_signature = mind.propose([seed_parent], [GATED_DELTANET], key="arch-0200", avoid={tried_signature})
    assert genome.signature(by_signature.components) != tried_signature

    # The same design under another name and motivation is the same function.
    renamed = genome.render(followed.components, "someone-elses-name", "Written elsewhere.")
    tried_fingerprint = functional_fingerprint(renamed)
    by_fingerprint = mind.propose([seed_parent], [GATED_DELTANET], key="arch-0200", avoid={tried_fingerprint})
    assert functional_fingerprint(by_fingerprint.code) != tried_fingerprint


def test_a_parent_without_a_genome_is_refused_but_a_baseline_file_is_read(mind):
    stranger = Candidate("arch-9", "hand-written", "import torch\n", 0.1)
    with pytest.raises(ValueError, match="not rendered from a genome"):
        mind.propose([stranger], [], key="arch-0400")
    mamba2 = Candidate("arch-8", "mamba2", baseline_code("mamba2"), 0.5)
    child = mind.propose([mamba2], [], key="arch-0401", turn=TURN["mutate"])
    assert child.components["layout"] == "fused"  # inherited, never moved


def test_a_seed_architecture_is_proposed_as_given(mind):
    given = mind.seed_architecture("gla", baseline_code("gla"))
    assert given.code == baseline_code("gla") and given.origin == "seed"
    assert given.components == genome.canonical(genome.BASELINES["gla"])
    assert mind.seed_architecture("mine", "import torch\n").components == {}


@pytest.mark.parametrize(
    ("broken", "failure_kind", "axis", "safer"),
    [
        ({"path": "local_global"}, "timeout", "path", "single"),
        ({"path": "local_global_gated"}, "memory", "path", "single"),
        ({"path": "local_global"}, "non_causal", "path", "single"),
        ({"path": "local_global"}, "quadratic", "path", "single"),
        ({"householder": "2", "expand_v": "0.5"}, "timeout", "householder", "1"),
        ({"gate": "output"}, "params_out_of_budget", "gate", "none"),
        ({"beta_range": "0_2"}, "non_finite", "beta_range", "0_1"),
        ({"update": "linear", "decay": "vector", "qk_norm": "none"}, "timeout", "decay", "scalar"),
    ],
)
def test_repair_returns_a_safer_variant_that_differs(mind, broken, failure_kind, axis, safer):
    components = {**genome.SEED_COMPONENTS, **broken}
    broken_candidate = candidate("arch-0500", components, 0.3)
    repaired = mind.repair(broken_candidate, failure_kind, "Traceback: it went wrong", key="arch-0501")
    assert repaired is not None and repaired.operator == "repair" and repaired.parent_ids == ("arch-0500",)
    assert repaired.components[axis] == safer
    assert repaired.code != broken_candidate.code
    assert genome.components_of(repaired.code) == repaired.components
    assert failure_kind in repaired.mutation and "arch-0500" in repaired.motivation


def test_repair_declines_what_it_cannot_help(mind):
    safe_linear = {**genome.SEED_COMPONENTS, "update": "linear", "qk_norm": "l2", "out_norm": "rms"}
    assert mind.repair(candidate("a", safe_linear, 0.1), "non_finite", "nan loss", key="k") is None
    assert mind.repair(candidate("a", genome.SEED_COMPONENTS, 0.1), "syntax_error", "bad", key="k") is None
    assert mind.repair(Candidate("arch-9", "hand-written", "import torch\n", 0.1), "timeout", "", key="k") is None
