"""The offline evolve mind: derives child architectures from parents without an LLM.

A child is the parent's genome (``genome.components_of(parent.code)``) with one or two
component changes, rendered into new code.  Where the change comes from is what the
paper's origin analysis counts:

- ``literature``: a retrieved cognition entry is tagged with a value the parent lacks;
- ``experience``: an experience entry whose outcome was ``improved`` introduced it;
- ``original``: no reference offered an untried change, so the mind picks one at random.

Experience entries that ``regressed`` or ``failed`` are read the other way: the values
they are tagged with are not introduced again.  An experience entry's tags are taken to
be the component values its experiment introduced (the analyst's ``changes``).

Everything random is drawn from ``random.Random`` seeded by the mind's seed and the
caller's key (the loop passes the new architecture id), so replaying the log with the
same inputs reproduces every proposal.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from services.researcher import genome
from services.researcher.novelty import functional_fingerprint
from services.runtime.vocabulary import COMPONENTS, parse_tag

# How often a second change joins the first: mostly one change, so a result can be
# explained against its parent, sometimes two, so the search can cross a valley.
SECOND_CHANGE_PROBABILITY = 0.3
# The few best-scoring suggestions compete; below them the retrieval is too weak to follow.
TOP_SUGGESTIONS = 3

LITERATURE_KINDS = frozenset({"cognition", "literature"})
IMPROVED, AVOIDED_OUTCOMES = "improved", frozenset({"regressed", "failed"})


@dataclass(frozen=True)
class Reference:
    """A retrieved cognition (literature) or experience entry."""

    id: str
    kind: str  # "cognition" (also accepted: "literature") | "experience"
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
    origin: str  # "seed" | "literature" | "experience" | "original"
    citations: tuple[str, ...]  # ids of the references the change came from
    mutation: str  # what changed and why, for a person reading the audit trail


@dataclass(frozen=True)
class _Change:
    axis: str
    value: str
    source: Reference | None = None  # None: an original change

    @property
    def origin(self) -> str:
        if self.source is None:
            return "original"
        return "experience" if self.source.kind == "experience" else "literature"


@dataclass
class _Child:
    components: dict[str, str]
    changes: list[_Change] = field(default_factory=list)


# Smaller or safer variants to try, in order, for each kind of failure: (axis, from, to).
REPAIRS: dict[str, tuple[tuple[str, str, str], ...]] = {
    # Rendered code is causal by construction; the parts with a time index are the window and the conv.
    "non_causal": (("path", "local_global", "single"), ("conv", "short", "none")),
    "timeout": (
        ("path", "local_global", "single"),
        ("decay", "vector", "scalar"),
        ("update", "delta", "linear"),
    ),
    "memory": (
        ("path", "local_global", "single"),
        ("decay", "vector", "scalar"),
        ("conv", "short", "none"),
    ),
    # The engineer's complexity probe: only the softmax window can grow with T beyond the recurrence.
    "quadratic": (("path", "local_global", "single"),),
    # The engineer's parameter budget (DeltaNet's count, within a tolerance): the gate's d x d
    # projection is the largest optional weight, GLA's low-rank gate the next.
    "params_out_of_budget": (
        ("gate", "output", "none"),
        ("decay", "vector", "scalar"),
        ("path", "local_global", "single"),
    ),
    "non_finite": (
        ("beta_range", "0_2", "0_1"),
        ("qk_norm", "none", "l2"),
        ("out_norm", "none", "rms"),
        ("feature_map", "identity", "silu"),
    ),
}


class EvolveMind:
    """Proposes children by real component changes; deterministic in (seed, key, inputs)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def seed_proposal(self) -> Proposal:
        components = dict(genome.SEED_COMPONENTS)
        name = genome.name_of(components)
        motivation = (
            "DeltaNet (Yang et al., 2024) is the seed of the search: a delta-rule recurrence that "
            "corrects what each key stores instead of only adding to it, with a short causal "
            "convolution, SiLU features, L2-normalised queries and keys, a write strength in (0, 1) "
            "and a per-head RMSNorm on the output. Every later architecture descends from it."
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

    def propose(
        self,
        parent: Candidate,
        references: list[Reference],
        *,
        key: str,
        avoid: set[str] = frozenset(),
    ) -> Proposal:
        """A child of ``parent`` with one or two component changes, never one already in ``avoid``.

        ``avoid`` holds functional fingerprints or ``genome.signature`` strings of designs
        already tried.  Raises ``ValueError`` for a parent not rendered from a genome and
        ``RuntimeError`` when every single change of the parent has been tried.
        """
        rng = random.Random(f"{self.seed}:{key}")
        parent_components = genome.components_of(parent.code)
        banned = _banned_values(references)
        seen = _DuplicateCheck(avoid | {genome.signature(parent_components)})

        for first in _ranked_changes(parent_components, references, banned, rng):
            child = _apply(_Child(dict(parent_components)), first, banned)
            if child is None or seen.contains(child.components):
                continue
            if rng.random() < SECOND_CHANGE_PROBABILITY:
                child = self._with_second_change(child, references, banned, rng, seen) or child
            return self._proposal(parent, parent_components, child, references, banned)
        raise RuntimeError(f"every single change of {parent.arch_id} has been tried")

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
            repaired = genome.make_valid({**components, axis: safer}, keep=axis)
            name = genome.name_of(repaired)
            what = _describe_changes(components, repaired)
            first_line = message.strip().splitlines()[0][:200] if message.strip() else "no message"
            motivation = (
                f"Repair of {candidate.name} ({candidate.arch_id}) after a {failure_kind} failure "
                f'("{first_line}"). The variant keeps the design but moves {what} '
                f"({genome.COMPONENT_NOTES[(axis, safer)]}), a smaller, safer choice after this failure."
            )
            return Proposal(
                name=name,
                motivation=motivation,
                code=genome.render(repaired, name, motivation),
                components=repaired,
                origin="original",
                citations=(),
                mutation=f"repair after {failure_kind}: {what}",
            )
        return None

    def _with_second_change(
        self,
        child: _Child,
        references: list[Reference],
        banned: set[tuple[str, str]],
        rng: random.Random,
        seen: _DuplicateCheck,
    ) -> _Child | None:
        first = child.changes[0]
        for second in _ranked_changes(child.components, references, banned, rng):
            if second.axis == first.axis:
                continue
            both = _apply(_Child(dict(child.components), list(child.changes)), second, banned)
            # The second change must not undo the first through the validity rules.
            if both is None or both.components[first.axis] != first.value:
                continue
            if not seen.contains(both.components):
                return both
        return None

    def _proposal(
        self,
        parent: Candidate,
        parent_components: dict[str, str],
        child: _Child,
        references: list[Reference],
        banned: set[tuple[str, str]],
    ) -> Proposal:
        name = genome.name_of(child.components)
        primary = child.changes[0]
        citations = tuple(dict.fromkeys(c.source.id for c in child.changes if c.source is not None))
        sentences = [
            f"{name} changes {parent.name} ({parent.arch_id}, fitness {parent.fitness:.3f}): "
            f"{_describe_changes(parent_components, child.components)}."
        ]
        for change in child.changes:
            sentences.append(
                f"It now uses {genome.COMPONENT_NOTES[(change.axis, change.value)]} "
                f"instead of {genome.COMPONENT_NOTES[(change.axis, parent_components[change.axis])]}."
            )
            sentences.append(_reason(change))
        avoided = sorted({ref.id for ref in references if ref.kind == "experience" and ref.outcome in AVOIDED_OUTCOMES})
        if avoided:
            values = ", ".join(sorted(f"{axis}={value}" for axis, value in banned))
            sentences.append(
                f"Experience {', '.join(avoided)} reported worse results with {values}, so none of them was introduced."
            )
        motivation = " ".join(sentences)
        mutation = "; ".join(
            f"{c.axis}: {parent_components[c.axis]} -> {c.value} ({c.source.id if c.source else 'original'})"
            for c in child.changes
        )
        follow_ups = {
            axis: value
            for axis, value in child.components.items()
            if value != parent_components[axis] and axis not in {c.axis for c in child.changes}
        }
        if follow_ups:
            mutation += "; to stay valid: " + ", ".join(
                f"{axis}: {parent_components[axis]} -> {value}" for axis, value in follow_ups.items()
            )
        return Proposal(
            name=name,
            motivation=motivation,
            code=genome.render(child.components, name, motivation),
            components=child.components,
            origin=primary.origin,
            citations=citations,
            mutation=mutation,
        )


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


def _banned_values(references: list[Reference]) -> set[tuple[str, str]]:
    return {
        value
        for ref in references
        if ref.kind == "experience" and ref.outcome in AVOIDED_OUTCOMES
        for value in _vocabulary_tags(ref)
    }


def _vocabulary_tags(ref: Reference) -> list[tuple[str, str]]:
    """The tags of ``ref`` that name a component value; other tags (topics, families) are ignored."""
    found = []
    for text in ref.tags:
        try:
            found.append(parse_tag(text))
        except ValueError:
            continue
    return found


def _ranked_changes(
    components: dict[str, str],
    references: list[Reference],
    banned: set[tuple[str, str]],
    rng: random.Random,
) -> list[_Change]:
    """Every change worth trying, best first: referenced suggestions, then random originals."""
    suggestions: dict[tuple[str, str], _Change] = {}
    for ref in sorted(references, key=lambda r: -r.score):
        follows = ref.kind in LITERATURE_KINDS or (ref.kind == "experience" and ref.outcome == IMPROVED)
        if not follows:
            continue
        for axis, value in _vocabulary_tags(ref):
            if components[axis] != value and (axis, value) not in banned:
                suggestions.setdefault((axis, value), _Change(axis, value, ref))
    ranked = list(suggestions.values())  # by the score of the reference that first suggests each
    ordered: list[_Change] = []
    # Draw from the best few by score so a strong reference usually wins but not always.
    while ranked:
        pool = ranked[:TOP_SUGGESTIONS]
        chosen = rng.choices(pool, weights=[max(c.source.score, 1e-6) for c in pool])[0]
        ordered.append(chosen)
        ranked.remove(chosen)
    originals = [
        _Change(axis, value)
        for axis, values in COMPONENTS.items()
        for value in values
        if value != components[axis] and (axis, value) not in banned and (axis, value) not in suggestions
    ]
    rng.shuffle(originals)
    return ordered + originals


def _apply(child: _Child, change: _Change, banned: set[tuple[str, str]]) -> _Child | None:
    """``child`` with ``change`` and what the validity rules then require; None if that needs a banned value."""
    components = genome.make_valid({**child.components, change.axis: change.value}, keep=change.axis)
    introduced = {(axis, value) for axis, value in components.items() if child.components[axis] != value}
    if introduced & banned:
        return None
    return _Child(components, [*child.changes, change])


def _describe_changes(before: dict[str, str], after: dict[str, str]) -> str:
    return ", ".join(
        f"{axis} from {before[axis]} to {after[axis]}" for axis in COMPONENTS if before[axis] != after[axis]
    )


def _reason(change: _Change) -> str:
    ref = change.source
    if ref is None:
        return "No retrieved reference offered an untried change here, so this one is exploratory."
    excerpt = _first_sentence(ref.text)
    if change.origin == "experience":
        return f'Experience {ref.id} improved after introducing {change.axis}={change.value}: "{excerpt}."'
    return f'The change follows {ref.id}: "{excerpt}."'


def _first_sentence(text: str, limit: int = 240) -> str:
    sentence = text.strip().split(". ")[0].rstrip(".")
    return sentence if len(sentence) <= limit else sentence[: limit - 3].rstrip() + "..."
