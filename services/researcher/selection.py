"""Parent selection strategies: which candidates the next proposal derives from, and why.

Each strategy is a pure function of the pool (as the fold of the log has it), a seeded
``random.Random`` and the proposal's turn, and returns the chosen parent, partners for
crossover (the mind takes the first that gives an untried child) and the numbers behind
the choice, which the researcher records on the proposal.  The same log and seed give the same choice on every replay.

- ``paper``: ASI-Arch's own: rank the pool, keep the best 50, draw the parent uniformly
  from the top 10 and 4 references uniformly from ranks 11-50 (the references are the
  crossover partners; while there are no ranks beyond 10, the rest of the top 10 are).
- ``weighted``: ShinkaEvolve's: weight each candidate by the sigmoid of its standardised
  fitness times ``1 / (1 + children)``, so a candidate that has been tried often gives way
  to one that has not; parent and partners are drawn by weight without replacement.
- ``pareto``: the paper's draw over a ranking by Pareto layers instead of by fitness: the
  designs no other beats on both the loss and the benchmark terms first, then those only the
  first layer beats, and so on (NSGA-II's sorting: within a layer each term's best first, then
  the most isolated). A scalar fitness ranks a design with
  the best loss and no recall below many that recall with a worse loss, so the paper's top 10
  can hold only one side of a trade-off; the layers keep both sides' best in the top 10.
- ``islands``: the pool is split into islands by descent (a child lives on the island
  its proposal was made for; seeds belong to every island); turns go round the islands,
  each draws its parent from its own top 3, and every ``MIGRATION_INTERVAL``-th turn the
  parent migrates in from the best of the neighbouring island in a ring.

Before the pool is ranked — while fewer than ``COLD_START`` experiments have a score —
every strategy is in its cold-start phase and draws from the seeds (the baseline and any
``--seed-arch`` architectures).
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

STRATEGIES = ("paper", "pareto", "weighted", "islands")
DEFAULT_STRATEGY = "paper"  # highest best fitness in the README's (small) three-strategy measurement

COLD_START = 3  # scored experiments before the pool is ranked
PARTNERS = 4  # crossover partners offered with each parent
PAPER_POOL, PAPER_TOP, PAPER_REFERENCES = 50, 10, 4
WEIGHTED_SHARPNESS = 1.0  # lambda in sigmoid(lambda * z)
ISLANDS, MIGRATION_INTERVAL, ISLAND_TOP = 3, 4, 3


@dataclass(frozen=True)
class Member:
    """A scored candidate of the pool."""

    arch_id: str
    fitness: float
    children: int = 0
    island: int | None = None  # None: a seed, on every island
    seed: bool = False
    baseline: bool = False  # a baseline is in the pool from the start and never counts as a scored experiment
    # The judge's loss and benchmark terms; None until judged (then the fitness stands for both).
    terms: tuple[float, float] | None = None

    @property
    def objectives(self) -> tuple[float, float]:
        return self.terms if self.terms is not None else (self.fitness, self.fitness)


@dataclass(frozen=True)
class Selection:
    strategy: str
    parent: str
    partners: tuple[str, ...]  # for crossover, the first choice first
    numbers: dict[str, Any] = field(default_factory=dict)
    text: str = ""

    @property
    def island(self) -> int | None:
        return self.numbers.get("island")


def select(strategy: str, members: list[Member], rng: random.Random, turn: int) -> Selection:
    """The parent (and crossover partners) for the proposal of this ``turn`` under ``strategy``.

    ``members`` is the pool, seeds and baselines included, in the run's order of proposal; raises
    ``ValueError`` for an unknown strategy or an empty pool.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown parent strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
    if not members:
        raise ValueError("the pool is empty: nothing to select a parent from")
    seeds = [m for m in members if m.seed]
    scored = [m for m in members if not m.seed and not m.baseline]
    if len(scored) < COLD_START:
        return _cold_start(strategy, seeds or members, len(scored), rng, turn)
    chooser: dict[str, Callable[[list[Member], random.Random, int], Selection]] = {
        "paper": _paper, "pareto": _pareto, "weighted": _weighted, "islands": _islands,
    }
    return chooser[strategy](_ranked(members), rng, turn)


def pareto_layers(members: list[Member]) -> list[list[Member]]:
    """NSGA-II's non-dominated sorting on the (loss, benchmark) terms: the first layer is every
    member no other is at least as good as on both terms and better on one; each layer after it
    is the same among those left. Within a layer the most isolated come first (NSGA-II's crowding
    distance, so each term's best and worst lead), then by fitness and id."""
    def dominates(a: Member, b: Member) -> bool:
        (al, ab), (bl, bb) = a.objectives, b.objectives
        return al >= bl and ab >= bb and (al > bl or ab > bb)

    left, layers = list(members), []
    while left:
        layer = [m for m in left if not any(dominates(o, m) for o in left)]
        crowding = _crowding_distance(layer)
        layers.append(sorted(layer, key=lambda m: (-crowding[m.arch_id], -m.fitness, m.arch_id)))
        left = [m for m in left if m.arch_id not in crowding]
    return layers


def _crowding_distance(layer: list[Member]) -> dict[str, float]:
    """Per member, the sum over both terms of the gap between its neighbours on that term, over
    the term's span; a term's two ends are infinitely far."""
    distance = dict.fromkeys((m.arch_id for m in layer), 0.0)
    for term in (0, 1):
        ordered = sorted(layer, key=lambda m: (m.objectives[term], m.arch_id))
        span = ordered[-1].objectives[term] - ordered[0].objectives[term]
        distance[ordered[0].arch_id] = distance[ordered[-1].arch_id] = math.inf
        if span > 0:
            for before, member, after in zip(ordered, ordered[1:], ordered[2:], strict=False):
                distance[member.arch_id] += (after.objectives[term] - before.objectives[term]) / span
    return distance


def _ranked(members: list[Member]) -> list[Member]:
    return sorted(members, key=lambda m: (-m.fitness, m.arch_id))


def _cold_start(strategy: str, seeds: list[Member], scored: int, rng: random.Random, turn: int) -> Selection:
    # In the order given (the run's order of proposal), not by id: ids are random per run, so
    # sorted by id two runs of one seed would draw different parents.
    ordered = list(seeds)
    parent = rng.choice(ordered)
    others = [m for m in ordered if m.arch_id != parent.arch_id]
    partners = rng.sample(others, min(PARTNERS, len(others)))
    numbers: dict[str, Any] = {
        "phase": "cold_start", "scored": scored, "threshold": COLD_START,
        "seeds": [m.arch_id for m in ordered], "fitness": round(parent.fitness, 6),
    }
    if strategy == "islands":
        numbers["island"] = turn % ISLANDS
    return Selection(strategy, parent.arch_id, tuple(m.arch_id for m in partners), numbers,
                     f"cold start ({scored} of {COLD_START} experiments scored): drawn from the "
                     f"{len(ordered)} seed(s), fitness {parent.fitness:.4f}")


def _paper(ranked: list[Member], rng: random.Random, turn: int, *, ranked_by: str = "") -> Selection:
    pool = ranked[:PAPER_POOL]
    top, rest = pool[:PAPER_TOP], pool[PAPER_TOP:]
    parent = rng.choice(top)
    references = rng.sample(rest, min(PAPER_REFERENCES, len(rest)))
    others = [m for m in top if m.arch_id != parent.arch_id]
    partners = references or rng.sample(others, min(PARTNERS, len(others)))
    rank = {m.arch_id: n for n, m in enumerate(pool, start=1)}
    numbers = {
        "phase": "ranked", "pool": len(pool), "top": len(top), "rank": rank[parent.arch_id],
        "fitness": round(parent.fitness, 6),
        "references": [{"arch_id": m.arch_id, "rank": rank[m.arch_id], "fitness": round(m.fitness, 6)}
                       for m in references],
        "partner_ranks": [rank[m.arch_id] for m in partners],
    }
    return Selection("paper", parent.arch_id, tuple(m.arch_id for m in partners), numbers,
                     f"drawn uniformly from the top {len(top)} of a {len(pool)}-candidate pool{ranked_by}: rank "
                     f"{rank[parent.arch_id]}, fitness {parent.fitness:.4f}; {len(references)} reference(s) "
                     f"from ranks {PAPER_TOP + 1}-{PAPER_POOL}")


def _pareto(ranked: list[Member], rng: random.Random, turn: int) -> Selection:
    layers = pareto_layers(ranked)
    layer_of = {m.arch_id: n for n, layer in enumerate(layers, start=1) for m in layer}
    chosen = _paper([m for layer in layers for m in layer], rng, turn,
                    ranked_by=" ranked by Pareto layer on the loss and benchmark terms")
    numbers = {**chosen.numbers, "layer": layer_of[chosen.parent], "first_layer": [m.arch_id for m in layers[0]]}
    return Selection("pareto", chosen.parent, chosen.partners, numbers, f"{chosen.text}; layer {numbers['layer']}")


def _weighted(ranked: list[Member], rng: random.Random, turn: int) -> Selection:
    fitness = [m.fitness for m in ranked]
    mean = statistics.fmean(fitness)
    spread = statistics.pstdev(fitness) or 1.0  # all equal: every z is 0 and the weights are equal
    weights = {m.arch_id: _sigmoid(WEIGHTED_SHARPNESS * (m.fitness - mean) / spread) / (1 + m.children)
               for m in ranked}
    total = sum(weights.values())
    parent = rng.choices(ranked, weights=[weights[m.arch_id] for m in ranked])[0]
    others = [m for m in ranked if m.arch_id != parent.arch_id]
    partners: list[Member] = []
    while others and len(partners) < PARTNERS:
        partners.append(rng.choices(others, weights=[weights[m.arch_id] for m in others])[0])
        others.remove(partners[-1])

    def row(m: Member) -> dict[str, Any]:
        return {"arch_id": m.arch_id, "fitness": round(m.fitness, 6), "children": m.children,
                "z": round((m.fitness - mean) / spread, 4), "weight": round(weights[m.arch_id], 6),
                "probability": round(weights[m.arch_id] / total, 6)}

    numbers = {"phase": "ranked", "pool": len(ranked), "mean": round(mean, 6), "std": round(spread, 6),
               "lambda": WEIGHTED_SHARPNESS, "chosen": row(parent),
               "partners": [row(m) for m in partners],
               "top": [row(m) for m in sorted(ranked, key=lambda m: -weights[m.arch_id])[:5]]}
    chosen = numbers["chosen"]
    return Selection("weighted", parent.arch_id, tuple(m.arch_id for m in partners), numbers,
                     f"drawn by weight sigmoid(z) / (1 + children) from {len(ranked)} candidates: fitness "
                     f"{parent.fitness:.4f} (z {chosen['z']:+.2f}), {parent.children} children, probability "
                     f"{chosen['probability']:.3f}")


def _islands(ranked: list[Member], rng: random.Random, turn: int) -> Selection:
    island = turn % ISLANDS
    migration = turn % MIGRATION_INTERVAL == MIGRATION_INTERVAL - 1
    source = (island - 1) % ISLANDS if migration else island

    def living_on(i: int) -> list[Member]:
        return [m for m in ranked if m.island is None or m.island == i]

    home, origin = living_on(island), living_on(source)
    if migration:
        parent = origin[0]  # the best of the neighbour migrates
    else:
        parent = rng.choice(origin[:ISLAND_TOP])
    others = [m for m in home if m.arch_id != parent.arch_id]
    partners = others[:PARTNERS]  # the island's best: crossover stays within the island
    numbers = {"phase": "ranked", "island": island, "islands": ISLANDS, "migration": migration,
               "from_island": source, "island_size": len(home), "interval": MIGRATION_INTERVAL,
               "rank_in_source": origin.index(parent) + 1, "fitness": round(parent.fitness, 6)}
    how = (f"migrated from island {source}'s best" if migration
           else f"drawn from the top {min(ISLAND_TOP, len(origin))} of island {island}")
    return Selection("islands", parent.arch_id, tuple(m.arch_id for m in partners), numbers,
                     f"island {island} of {ISLANDS} ({len(home)} members): {how}, fitness {parent.fitness:.4f}")


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))
