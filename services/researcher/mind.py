"""The offline evolve mind: derives child architectures from parents without an LLM.

A child is a parent's genome (``genome.components_of(parent.code)``) changed by one
operator, repaired to a valid design within the parameter budget, and rendered into new
code.  The operators take turns (``OPERATORS``, by the proposal's turn in the run), so
each gets its share of any budget; when one has nothing untried to offer, the next in
the order steps in.  Where a change comes from is what the paper's origin analysis counts:

- ``insert_cognition`` (origin ``cognition``): a value named by a retrieved cognition
  entry's tags that the parent lacks, the entry cited;
- ``insert_experience`` (origin ``experience``): a value whose introduction raised
  fitness more often than it lowered it across the run so far (``experience.py``), the
  experiments that show it cited;
- ``crossover`` (origin ``experience``: it recombines two of the run's own measured
  designs): each axis from either parent, repaired to a valid design; two parent ids;
- ``mutate_init``, ``mutate`` and ``mutate_width`` (origin ``original``): one or two values
  moved — a number by one step on its scale (sometimes two), a choice to another value;
  ``mutate_init`` moves only initialisation values (gate and decay ranges, the write
  strength's bias, the weight initialisation), ``mutate_width`` only the shape of the
  state (key and value widths, heads, shared keys, Householder steps), where the parameter
  budget makes one role give up what another takes on.

Experience statistics weigh every draw: a value whose introduction keeps lowering fitness
is drawn less often, one that keeps raising it more often (``TagRecord.factor``).

Everything random is drawn from ``random.Random`` seeded by the mind's seed and the
caller's key (the loop passes the new architecture id), so replaying the log with the
same inputs reproduces every proposal.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from services.researcher import genome
from services.researcher.experience import TagRecord
from services.researcher.novelty import functional_fingerprint
from services.runtime.vocabulary import COMPONENTS, SCALES, parse_tag

OPERATORS = ("insert_cognition", "mutate_init", "crossover", "insert_experience", "mutate", "mutate_width")
ORIGINS = {"insert_cognition": "cognition", "insert_experience": "experience", "crossover": "experience",
           "mutate_init": "original", "mutate": "original", "mutate_width": "original"}
# The axes each restricted mutation moves, first change and second alike.
RESTRICTED_AXES = {"mutate_init": genome.INIT_AXES, "mutate_width": genome.WIDTH_AXES}
# How often a second change joins the first: mostly one change, so a result can be
# explained against its parent, sometimes two, so the search can cross a valley.
SECOND_CHANGE_PROBABILITY = 0.3
LONG_STEP_WEIGHT = 0.25  # a two-step move on a scale, against 1 for a one-step move
# The few best-weighted suggestions compete; below them the retrieval is too weak to follow.
TOP_SUGGESTIONS = 3
CROSSOVER_DRAWS = 16  # coin-flip children tried before crossover gives way to the next operator
COGNITION = "cognition"


@dataclass(frozen=True)
class Reference:
    """A retrieved cognition or experience entry."""

    id: str
    kind: str  # "cognition" | "experience"
    tags: tuple[str, ...]
    text: str
    score: float
    outcome: str = ""  # for experience: "improved" | "regressed" | "failed" | ""


@dataclass(frozen=True)
class Candidate:
    """A member of the candidate pool."""

    arch_id: str
    name: str
    code: str
    fitness: float


@dataclass(frozen=True)
class Proposal:
    name: str
    motivation: str
    code: str
    components: dict[str, str]
    origin: str  # "seed" | "cognition" | "experience" | "original"
    citations: tuple[str, ...]  # ids of the references (or experiments) the change came from
    mutation: str  # what changed and why, for a person reading the audit trail
    operator: str = "seed"  # one of OPERATORS, "seed" or "repair"
    parent_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Change:
    axis: str
    value: str
    source: Reference | None = None  # the cognition entry that suggested it
    evidence: TagRecord | None = None  # the experience statistics that suggested it
    weight: float = 1.0


@dataclass
class _Child:
    components: dict[str, str]
    changes: list[_Change] = field(default_factory=list)


# Smaller or safer variants to try, in order, for each kind of failure: (axis, from, to).
REPAIRS: dict[str, tuple[tuple[str, str, str], ...]] = {
    # Rendered code is causal by construction; the parts with a time index are the window and the conv.
    "non_causal": (("path", "local_global", "single"), ("path", "local_global_gated", "single"),
                   ("conv", "short", "none")),
    "timeout": (
        ("householder", "3", "2"), ("householder", "2", "1"),
        ("path", "local_global", "single"), ("path", "local_global_gated", "single"),
        ("decay", "vector", "scalar"), ("update", "delta", "linear"),
    ),
    "memory": (
        ("householder", "3", "2"), ("householder", "2", "1"),
        ("path", "local_global", "single"), ("path", "local_global_gated", "single"),
        ("decay", "vector", "scalar"), ("conv", "short", "none"),
    ),
    # The engineer's complexity probe: only the softmax window can grow with T beyond the recurrence.
    "quadratic": (("path", "local_global", "single"), ("path", "local_global_gated", "single"),
                  ("update", "softmax", "linear")),
    # The engineer's parameter budget: the widest optional weights first.
    "params_out_of_budget": (
        ("householder", "3", "2"), ("householder", "2", "1"), ("expand_v", "2", "1"), ("expand_k", "2", "1"),
        ("gate", "output", "none"), ("gate", "sigmoid", "none"), ("decay", "vector", "scalar"),
        ("path", "local_global_gated", "single"),
    ),
    "non_finite": (
        ("beta_range", "0_2", "0_1"), ("qk_norm", "none", "l2"), ("out_norm", "none", "rms"),
        ("normalizer", "sum", "none"), ("beta_bias", "2", "0"), ("beta_bias", "-2", "0"),
    ),
}


class EvolveMind:
    """Proposes children by real component changes; deterministic in (seed, key, inputs).

    ``budget`` is the (d_model, n_heads) at which the engineer judges the parameter budget
    (the run's profile); None leaves the budget unchecked.
    """

    def __init__(self, seed: int, budget: tuple[int, int] | None = None) -> None:
        self.seed = seed
        self.budget = budget

    def seed_proposal(self) -> Proposal:
        components = dict(genome.SEED_COMPONENTS)
        name = genome.name_of(components)
        motivation = (
            "DeltaNet (Yang et al., 2024) is the seed of the search: a delta-rule recurrence that "
            "corrects what each key stores instead of only adding to it, with short causal "
            "convolutions and SiLU on q, k and v, L2-normalised queries and keys, a write strength in "
            "(0, 1) and a per-head RMSNorm on the output. Every later architecture descends from it."
        )
        return Proposal(
            name=name,
            motivation=motivation,
            code=genome.render(components, name, motivation),
            components=components,
            origin="seed",
            citations=(),
            mutation="none: the seed of the search",
        )

    def seed_architecture(self, name: str, code: str) -> Proposal:
        """A ``--seed-arch`` file, proposed as it is; its genome when the evolve mind can read one."""
        try:
            components = genome.components_of(code)
        except ValueError:
            components = {}  # only an LLM mind can derive children from it
        return Proposal(
            name=name,
            motivation=f"{name} is a seed architecture of this run, given as a file (--seed-arch); the "
            "search starts from it as well as from the baseline.",
            code=code,
            components=components,
            origin="seed",
            citations=(),
            mutation="none: a seed architecture of the run",
        )

    def propose(
        self,
        parents: list[Candidate],
        references: list[Reference],
        stats: dict[str, TagRecord] | None = None,
        *,
        key: str,
        turn: int = 0,
        avoid: Iterable[str] = (),
    ) -> Proposal:
        """A child of ``parents[0]``; when crossover's turn comes, crossed with the first of
        ``parents[1:]`` that gives an untried child.

        ``avoid`` holds functional fingerprints or ``genome.signature`` strings of designs
        already tried; nothing in it is proposed.  Raises ``ValueError`` for a first parent
        not readable as a genome and ``RuntimeError`` when no operator finds an untried design.
        """
        rng = random.Random(f"{self.seed}:{key}")
        primary = parents[0]
        first = genome.components_of(primary.code)
        stats = stats or {}
        seen = _DuplicateCheck(set(avoid) | {genome.signature(first)})
        start = turn % len(OPERATORS)
        for operator in OPERATORS[start:] + OPERATORS[:start]:
            if operator == "crossover":
                for partner, second in _readable_partners(parents[1:], first):
                    child = self._crossover(first, second, rng, seen)
                    if child is not None:
                        return self._proposal(operator, primary, first, partner, second, child, stats)
                continue
            child = self._changed(operator, first, references, stats, rng, seen)
            if child is not None:
                return self._proposal(operator, primary, first, None, None, child, stats)
        raise RuntimeError(f"every change of {primary.arch_id} within reach has been tried")

    # -- operators ------------------------------------------------------------------------------

    def _changed(
        self,
        operator: str,
        parent: dict[str, str],
        references: list[Reference],
        stats: dict[str, TagRecord],
        rng: random.Random,
        seen: _DuplicateCheck,
    ) -> _Child | None:
        """One change by ``operator`` (sometimes a second mutation after it), or None."""
        axes = RESTRICTED_AXES.get(operator, frozenset(COMPONENTS))
        if operator == "insert_cognition":
            first_changes = _cognition_suggestions(parent, references, stats, rng)
        elif operator == "insert_experience":
            first_changes = _experience_suggestions(parent, stats, rng)
        else:
            first_changes = _mutations(parent, axes, stats, rng)
        for change in first_changes:
            child = self._apply(_Child(dict(parent)), change)
            if child is None or seen.contains(child.components):
                continue
            if operator.startswith("mutate") and rng.random() < SECOND_CHANGE_PROBABILITY:
                for second in _mutations(child.components, axes - {change.axis}, stats, rng):
                    both = self._apply(child, second)
                    if both is not None and not seen.contains(both.components):
                        return both
            return child
        return None

    def _crossover(
        self, first: dict[str, str], second: dict[str, str], rng: random.Random, seen: _DuplicateCheck
    ) -> _Child | None:
        differing = [axis for axis in COMPONENTS if first[axis] != second[axis]]
        for _ in range(CROSSOVER_DRAWS):
            taken = {axis for axis in differing if rng.random() < 0.5}
            drawn = {axis: second[axis] if axis in taken else first[axis] for axis in COMPONENTS}
            child = self._fit(genome.make_valid(drawn, keep=set()), keep=set())
            if child is None or child in (first, second) or seen.contains(child):
                continue
            return _Child(child, [_Change(axis, child[axis]) for axis in COMPONENTS if child[axis] != first[axis]])
        return None

    def _apply(self, child: _Child, change: _Change) -> _Child | None:
        """``child`` with ``change``, made valid and fitted to the budget around the kept changes; None
        when that cannot keep the change or earlier ones."""
        keep = {c.axis for c in child.changes} | {change.axis}
        components = genome.make_valid({**child.components, change.axis: change.value}, keep=keep)
        fitted = self._fit(components, keep)
        if fitted is None or any(fitted[c.axis] != c.value for c in [*child.changes, change]):
            return None
        return _Child(fitted, [*child.changes, change])

    def _fit(self, components: dict[str, str], keep: set[str]) -> dict[str, str] | None:
        if self.budget is None:
            return components
        return genome.fit_budget(components, keep, *self.budget)

    # -- the proposal -------------------------------------------------------------------------

    def _proposal(
        self,
        operator: str,
        primary: Candidate,
        first: dict[str, str],
        partner: Candidate | None,
        second: dict[str, str] | None,
        child: _Child,
        stats: dict[str, TagRecord],
    ) -> Proposal:
        name = genome.name_of(child.components)
        what = _describe_changes(first, child.components)
        if operator == "crossover":
            assert partner is not None and second is not None
            from_partner = [c.axis for c in child.changes if second[c.axis] == c.value]
            sentences = [
                f"{name} crosses {primary.name} ({primary.arch_id}, fitness {primary.fitness:.3f}) with "
                f"{partner.name} ({partner.arch_id}, fitness {partner.fitness:.3f}): {what}.",
                f"It takes {', '.join(from_partner) or 'no axis'} from {partner.arch_id} and the rest from "
                f"{primary.arch_id}; any other move only keeps the design valid and within the parameter budget.",
            ]
            parent_ids: tuple[str, ...] = (primary.arch_id, partner.arch_id)
        else:
            sentences = [f"{name} changes {primary.name} ({primary.arch_id}, fitness {primary.fitness:.3f}): {what}."]
            for change in child.changes:
                sentences.append(
                    f"It now uses {genome.note(change.axis, change.value)} instead of "
                    f"{genome.note(change.axis, first[change.axis])}."
                )
                sentences.append(_reason(change, stats))
            parent_ids = (primary.arch_id,)
        citations = tuple(
            dict.fromkeys(
                [c.source.id for c in child.changes if c.source is not None]
                + [arch for c in child.changes if c.evidence is not None for arch in c.evidence.raised]
            )
        )
        mutation = f"{operator}: " + "; ".join(
            f"{c.axis}: {first[c.axis]} -> {c.value} ({_source_label(c, operator, partner)})" for c in child.changes
        )
        named = {c.axis for c in child.changes}
        follow_ups = [axis for axis in COMPONENTS if child.components[axis] != first[axis] and axis not in named]
        if follow_ups:
            mutation += "; to stay valid and in budget: " + ", ".join(
                f"{axis}: {first[axis]} -> {child.components[axis]}" for axis in follow_ups
            )
        motivation = " ".join(sentences)
        return Proposal(
            name=name,
            motivation=motivation,
            code=genome.render(child.components, name, motivation),
            components=child.components,
            origin=ORIGINS[operator],
            citations=citations,
            mutation=mutation,
            operator=operator,
            parent_ids=parent_ids,
        )

    def repair(self, candidate: Candidate, failure_kind: str, message: str, *, key: str) -> Proposal | None:
        """A smaller or safer variant after ``failure_kind``, or None when no repair applies.

        Known kinds are the keys of ``REPAIRS`` (the engineer's ``non_causal``, ``timeout``,
        ``memory``, ``non_finite``, ``quadratic``, ``params_out_of_budget``).  Repairs
        follow a fixed order and need no randomness; ``key`` keeps the call shaped like
        :meth:`propose`.
        """
        try:
            components = genome.components_of(candidate.code)
        except ValueError:
            return None
        for axis, broken, safer in REPAIRS.get(failure_kind, ()):
            if components[axis] != broken:
                continue
            repaired = self._fit(genome.make_valid({**components, axis: safer}, keep=axis), keep={axis})
            if repaired is None or repaired == components:
                continue
            name = genome.name_of(repaired)
            what = _describe_changes(components, repaired)
            first_line = message.strip().splitlines()[0][:200] if message.strip() else "no message"
            motivation = (
                f"Repair of {candidate.name} ({candidate.arch_id}) after a {failure_kind} failure "
                f'("{first_line}"). The variant keeps the design but moves {what} '
                f"({genome.note(axis, safer)}), a smaller, safer choice after this failure."
            )
            return Proposal(
                name=name,
                motivation=motivation,
                code=genome.render(repaired, name, motivation),
                components=repaired,
                origin="original",
                citations=(),
                mutation=f"repair after {failure_kind}: {what}",
                operator="repair",
                parent_ids=(candidate.arch_id,),
            )
        return None


def _readable_partners(partners: list[Candidate], first: dict[str, str]) -> list[tuple[Candidate, dict[str, str]]]:
    """The partners the evolve mind can read as a genome and that differ from the parent, in order."""
    found = []
    for partner in partners:
        try:
            components = genome.components_of(partner.code)
        except ValueError:
            continue  # a partner the evolve mind cannot read takes no part
        if genome.signature(components) != genome.signature(first):
            found.append((partner, components))
    return found


class _DuplicateCheck:
    """Membership in ``avoid``, by signature and, when ``avoid`` holds any, by fingerprint."""

    def __init__(self, avoid: set[str]) -> None:
        self.avoid = avoid
        # Signatures are tag lists ("axis=value ..."); anything else is a fingerprint.
        self.has_fingerprints = any("=" not in entry for entry in avoid)

    def contains(self, components: dict[str, str]) -> bool:
        if genome.signature(components) in self.avoid:
            return True
        if not self.has_fingerprints:
            return False
        code = genome.render(components, genome.name_of(components), "")
        return functional_fingerprint(code) in self.avoid


# -- where changes come from ------------------------------------------------------------------


def _factor(stats: dict[str, TagRecord], axis: str, value: str) -> float:
    record = stats.get(f"{axis}={value}")
    return record.factor if record is not None else 1.0


def _searchable(axis: str, value: str) -> bool:
    return value not in genome.NOT_SEARCHED.get(axis, frozenset())


def _weighted_order(changes: list[_Change], rng: random.Random) -> list[_Change]:
    """A random order in which heavier changes tend to come first (Efraimidis-Spirakis keys)."""
    keyed = [(rng.random() ** (1 / max(change.weight, 1e-9)), n, change) for n, change in enumerate(changes)]
    return [change for _, _, change in sorted(keyed, key=lambda item: (-item[0], item[1]))]


def _cognition_suggestions(
    parent: dict[str, str], references: list[Reference], stats: dict[str, TagRecord], rng: random.Random
) -> list[_Change]:
    suggestions: dict[tuple[str, str], _Change] = {}
    for ref in sorted(references, key=lambda r: (-r.score, r.id)):
        if ref.kind != COGNITION:
            continue
        for axis, value in _vocabulary_tags(ref):
            if parent[axis] != value and _searchable(axis, value):
                weight = max(ref.score, 1e-6) * _factor(stats, axis, value)
                suggestions.setdefault((axis, value), _Change(axis, value, source=ref, weight=weight))
    ranked = sorted(suggestions.values(), key=lambda c: -c.weight)
    ordered: list[_Change] = []
    # Draw from the best few by weight so a strong reference usually wins but not always.
    while ranked:
        pool = ranked[:TOP_SUGGESTIONS]
        chosen = rng.choices(pool, weights=[c.weight for c in pool])[0]
        ordered.append(chosen)
        ranked.remove(chosen)
    return ordered


def _experience_suggestions(parent: dict[str, str], stats: dict[str, TagRecord], rng: random.Random) -> list[_Change]:
    changes = []
    for text, record in stats.items():
        axis, value = parse_tag(text)
        if record.net > 0 and parent[axis] != value and _searchable(axis, value):
            changes.append(_Change(axis, value, evidence=record, weight=record.factor))
    return _weighted_order(changes, rng)


def _mutations(parent: dict[str, str], axes: set[str] | frozenset[str], stats: dict[str, TagRecord],
               rng: random.Random) -> list[_Change]:
    """Every single move on ``axes`` that applies to ``parent``, in a weighted random order."""
    changes = []
    for axis in COMPONENTS:
        if axis not in axes or axis in genome.FIXED_AXES or axis not in genome.relevant_axes(parent):
            continue
        values = COMPONENTS[axis]
        here = values.index(parent[axis])
        if axis in SCALES:
            moves = [(here + step, 1.0 if abs(step) == 1 else LONG_STEP_WEIGHT) for step in (-2, -1, 1, 2)]
            candidates = [(values[i], w) for i, w in moves if 0 <= i < len(values)]
        else:
            candidates = [(v, 1.0) for v in values if v != parent[axis]]
        for value, weight in candidates:
            if _searchable(axis, value):
                changes.append(_Change(axis, value, weight=weight * _factor(stats, axis, value)))
    return _weighted_order(changes, rng)


def _vocabulary_tags(ref: Reference) -> list[tuple[str, str]]:
    """The tags of ``ref`` that name a component value; other tags (topics, families) are ignored."""
    found = []
    for text in ref.tags:
        try:
            found.append(parse_tag(text))
        except ValueError:
            continue
    return found


def _describe_changes(before: dict[str, str], after: dict[str, str]) -> str:
    return ", ".join(
        f"{axis} from {before[axis]} to {after[axis]}" for axis in COMPONENTS if before[axis] != after[axis]
    )


def _source_label(change: _Change, operator: str, partner: Candidate | None) -> str:
    if change.source is not None:
        return change.source.id
    if change.evidence is not None:
        return f"experience: raised {len(change.evidence.raised)}, lowered {len(change.evidence.lowered)}"
    if operator == "crossover" and partner is not None:
        return f"crossover with {partner.arch_id}"
    return "original"


def _reason(change: _Change, stats: dict[str, TagRecord]) -> str:
    record = stats.get(f"{change.axis}={change.value}")
    history = (
        f" Introducing it has so far raised fitness {len(record.raised)} time(s) and lowered it "
        f"{len(record.lowered)} time(s) in this run."
        if record is not None else ""
    )
    if change.source is not None:
        return f'The change follows {change.source.id}: "{_first_sentence(change.source.text)}."' + history
    if change.evidence is not None:
        return (f"Experience statistics favour it: experiments {', '.join(change.evidence.raised)} raised "
                f"fitness when they introduced it." + history)
    return "The move is exploratory: a step on this axis from the parent's value." + history


def _first_sentence(text: str, limit: int = 240) -> str:
    sentence = text.strip().split(". ")[0].rstrip(".")
    return sentence if len(sentence) <= limit else sentence[: limit - 3].rstrip() + "..."
