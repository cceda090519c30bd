"""Parent selection: each strategy draws as it says, records its numbers, and repeats under a seed."""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import replace

import pytest

from services.engineer.baselines import baseline_code
from services.researcher.mind import EvolveMind
from services.researcher.selection import (
    COLD_START,
    ISLANDS,
    MIGRATION_INTERVAL,
    STRATEGIES,
    Member,
    pareto_layers,
    select,
)
from services.researcher.service import pool_members
from services.runtime.projection import ArchitectureView

SEED = Member("seed", 0.5, seed=True)
SEED_CODE = EvolveMind(0).seed_proposal().code


def pool(n: int, *, children: int = 0) -> list[Member]:
    """The seed and n scored candidates, cand-00 the best; islands assigned round the ring."""
    return [SEED] + [Member(f"cand-{i:02d}", 0.9 - i * 0.005, children, island=i % ISLANDS) for i in range(n)]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_each_strategy_repeats_under_a_seed_and_varies_across_seeds(strategy):
    members = pool(30)
    first = [select(strategy, members, random.Random(f"7:{n}"), n) for n in range(20)]
    again = [select(strategy, members, random.Random(f"7:{n}"), n) for n in range(20)]
    assert first == again
    other = [select(strategy, members, random.Random(f"8:{n}"), n) for n in range(20)]
    assert [s.parent for s in other] != [s.parent for s in first]
    for chosen in first:
        assert chosen.strategy == strategy and chosen.numbers["phase"] == "ranked" and chosen.text
        assert chosen.parent not in chosen.partners and len(set(chosen.partners)) == len(chosen.partners)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_before_the_pool_is_ranked_the_seeds_are_the_parents(strategy):
    second_seed = Member("seed-2", 0.45, seed=True)
    members = [SEED, second_seed] + pool(COLD_START - 1)[1:]
    for n in range(10):
        chosen = select(strategy, members, random.Random(n), n)
        assert chosen.numbers["phase"] == "cold_start" and chosen.numbers["scored"] == COLD_START - 1
        assert chosen.parent in {"seed", "seed-2"} and set(chosen.partners) <= {"seed", "seed-2"}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_the_cold_start_draws_by_place_not_by_id(strategy):
    # Arch ids are random per run: two runs of one seed must draw the same place whatever the ids sort as.
    for n in range(10):
        drawn = [select(strategy, [Member(first, 0.5, seed=True), Member(second, 0.5, seed=True)],
                        random.Random(n), n).parent
                 for first, second in (("arch-aa", "arch-zz"), ("arch-zz", "arch-aa"))]
        assert drawn in (["arch-aa", "arch-zz"], ["arch-zz", "arch-aa"])


def test_unknown_strategies_and_empty_pools_are_refused():
    with pytest.raises(ValueError, match="unknown parent strategy 'ucb'"):
        select("ucb", pool(5), random.Random(0), 0)
    with pytest.raises(ValueError, match="pool is empty"):
        select("paper", [], random.Random(0), 0)


def test_paper_draws_uniformly_from_the_top_10_with_references_from_ranks_11_to_50():
    members = pool(60)  # 61 with the seed: ranks beyond 50 are outside the pool
    rank = {m.arch_id: n for n, m in enumerate(sorted(members, key=lambda m: -m.fitness), start=1)}
    parents = Counter()
    for n in range(2000):
        chosen = select("paper", members, random.Random(n), n)
        parents[chosen.parent] += 1
        assert chosen.numbers["pool"] == 50 and chosen.numbers["top"] == 10
        assert rank[chosen.parent] <= 10 and chosen.numbers["rank"] == rank[chosen.parent]
        references = [r["arch_id"] for r in chosen.numbers["references"]]
        assert len(references) == 4 and all(11 <= rank[r] <= 50 for r in references)
        assert list(chosen.partners) == references
    assert len(parents) == 10 and all(140 < count < 260 for count in parents.values())  # 200 each expected


def test_paper_crosses_within_the_top_10_while_nothing_ranks_beyond_it():
    chosen = select("paper", pool(6), random.Random(0), 0)
    assert chosen.numbers["references"] == [] and chosen.partners
    assert all(p.startswith(("cand-", "seed")) for p in chosen.partners)


def test_pareto_layers_are_non_dominated_sorting_on_the_loss_and_benchmark_terms():
    # (loss term, benchmark term); fitness is their mean here, as if the quality term were equal.
    points = {"loss-leader": (0.9, 0.1), "recaller": (0.1, 0.9), "balanced": (0.5, 0.5), "tie": (0.5, 0.5),
              "behind-balanced": (0.4, 0.4), "behind-leader": (0.8, 0.05), "worst": (0.05, 0.05)}
    members = [Member(name, (lo + be) / 2, terms=(lo, be)) for name, (lo, be) in points.items()]
    layers = [[m.arch_id for m in layer] for layer in pareto_layers(members)]
    # Equal terms do not dominate each other. Within a layer each term's ends lead, then the most
    # isolated, then by fitness and id.
    assert layers == [["loss-leader", "recaller", "balanced", "tie"], ["behind-leader", "behind-balanced"], ["worst"]]
    unjudged = Member("unjudged", 0.5)  # a baseline not yet scored: its fitness stands for both terms
    assert unjudged.objectives == (0.5, 0.5)


def test_pareto_keeps_the_loss_leader_in_the_top_10_where_fitness_ranks_it_out():
    # Twelve designs that recall with a middling loss outscore, by fitness, one with the best loss
    # and no recall (the second discovery run's Gated DeltaNet against DeltaNet's line).
    recallers = [Member(f"recall-{i:02d}", 0.40 - i * 0.001, terms=(0.10 + i * 0.01, 0.70 - i * 0.02))
                 for i in range(12)]
    leader = Member("loss-leader", 0.29, terms=(0.5, 0.05))
    seed = Member("seed", 0.33, seed=True, baseline=True, terms=(0.02, 0.5))
    members = [seed, *recallers, leader]
    paper = {select("paper", members, random.Random(n), n).parent for n in range(300)}
    assert "loss-leader" not in paper
    drawn = [select("pareto", members, random.Random(n), n) for n in range(300)]
    assert "loss-leader" in {d.parent for d in drawn}
    for chosen in drawn:
        assert chosen.strategy == "pareto" and chosen.numbers["top"] == 10
        assert "loss-leader" in chosen.numbers["first_layer"] and chosen.numbers["layer"] >= 1
        assert "Pareto layer" in chosen.text


def test_weighted_probabilities_are_the_sigmoid_of_z_over_one_plus_children():
    members = [SEED, Member("a", 0.7, children=0), Member("b", 0.7, children=3), Member("c", 0.4)]
    chosen = select("weighted", members, random.Random(0), 0)
    fitness = [m.fitness for m in members]
    mean = sum(fitness) / 4
    std = math.sqrt(sum((f - mean) ** 2 for f in fitness) / 4)
    weights = {m.arch_id: 1 / (1 + math.exp(-(m.fitness - mean) / std)) / (1 + m.children) for m in members}
    row = chosen.numbers["chosen"]
    assert row["probability"] == pytest.approx(weights[row["arch_id"]] / sum(weights.values()), abs=1e-6)
    assert chosen.numbers["mean"] == pytest.approx(mean, abs=1e-6)
    assert chosen.numbers["std"] == pytest.approx(std, abs=1e-6)

    counts = Counter(select("weighted", members, random.Random(n), n).parent for n in range(3000))
    # Same fitness, three more children: a quarter of the weight.
    assert counts["b"] < counts["a"] / 2.5
    assert counts["c"] < counts["seed"] < counts["a"]


def test_islands_go_round_and_migrate_from_the_neighbour_every_interval():
    members = pool(12)
    best_of = {i: next(m.arch_id for m in members[1:] if m.island == i) for i in range(ISLANDS)}
    for turn in range(2 * MIGRATION_INTERVAL * ISLANDS):
        chosen = select("islands", members, random.Random(turn), turn)
        island = turn % ISLANDS
        assert chosen.island == island
        parent = next(m for m in members if m.arch_id == chosen.parent)
        if turn % MIGRATION_INTERVAL == MIGRATION_INTERVAL - 1:
            assert chosen.numbers["migration"] and chosen.parent == best_of[(island - 1) % ISLANDS]
        else:
            assert not chosen.numbers["migration"] and parent.island in (island, None)
        assert all(next(m for m in members if m.arch_id == p).island in (island, None) for p in chosen.partners)


def _arch(arch_id: str, *, baseline: bool = False, origin: str = "original", status: str = "analyzed",
          fitness: float | None = 0.4, parents: tuple[str, ...] = (), code: str = "") -> ArchitectureView:
    return ArchitectureView(arch_id=arch_id, run_id="run-t", name=arch_id, parents=list(parents), motivation="",
                            code=code or SEED_CODE, code_hash="", components={}, origin=origin, citations=[],
                            mutation="", parent_selection="", mind="evolve", is_baseline=baseline, fingerprint="",
                            repair_of_attempt=0, status=status, fitness=fitness)


def test_the_pool_holds_both_baselines_from_the_start_and_counts_only_the_runs_own_experiments():
    root = _arch("arch-dn", baseline=True, origin="seed", status="proposed", fitness=None)
    gdn = _arch("arch-gdn", baseline=True, origin="seed", status="proposed", fitness=None,
                code=baseline_code("gated_deltanet"))
    early = pool_members([root, gdn], root, genome_only=True)
    assert [(m.arch_id, m.fitness, m.seed, m.baseline) for m in early] == [
        ("arch-dn", 0.5, True, True), ("arch-gdn", 0.5, False, True)]
    # Whichever baseline is scored first, the cold start draws from the root and counts no baseline.
    for pool in (early, pool_members([root, replace(gdn, status="analyzed", fitness=0.29)], root, genome_only=True)):
        chosen = select("paper", pool, random.Random(0), 0)
        assert chosen.parent == "arch-dn" and chosen.numbers["scored"] == 0

    scored_gdn = replace(gdn, status="analyzed", fitness=0.29)
    child = _arch("arch-c", parents=("arch-gdn",), fitness=0.42)
    unreadable = _arch("arch-llm", fitness=0.6, code="class Mixer: ...")
    failed = _arch("arch-f", status="failed", fitness=None)
    members = pool_members([root, scored_gdn, child, unreadable, failed], root, genome_only=True)
    assert [(m.arch_id, m.seed, m.children) for m in members] == [
        ("arch-dn", True, 0), ("arch-gdn", False, 1), ("arch-c", False, 0)]
    # The LLM mind reads any code; a failed baseline is no parent.
    assert "arch-llm" in {m.arch_id for m in pool_members([root, unreadable], root, genome_only=False)}
    broken = replace(gdn, status="failed", failure={"kind": "timeout", "message": "m"})
    assert [m.arch_id for m in pool_members([root, broken], root, genome_only=True)] == ["arch-dn"]
