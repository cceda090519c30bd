"""Experience statistics: which component values raised or lowered fitness when introduced.

A pure function over the projection (the fold of the log), so the numbers the mind acts on
are the ones any replay of the log rebuilds.  An experiment *introduces* a tag
``axis=value`` when its design has that value and none of its parents had it.  It
*raised* fitness when it scored above every parent, and *lowered* it when it scored below
every parent or failed outright; ties and experiments whose parents have no score do
not count.  Proposals the novelty gate rejected were never trained and do not count.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.runtime.projection import ArchitectureView, Projection


@dataclass(frozen=True)
class TagRecord:
    """What introducing one tag did, with the experiments that show it."""

    raised: tuple[str, ...] = ()  # arch ids whose fitness rose over every parent
    lowered: tuple[str, ...] = ()  # arch ids that fell below every parent, or failed

    @property
    def net(self) -> int:
        return len(self.raised) - len(self.lowered)

    @property
    def factor(self) -> float:
        """How much more (or less) often to try the tag than a tag with no record.

        Squared odds, so a tag that lowered fitness twice and never raised it is tried a
        ninth as often, and one that raised it twice nine times as often.
        """
        return ((1 + len(self.raised)) / (1 + len(self.lowered))) ** 2


def experience_statistics(projection: Projection, run_id: str) -> dict[str, TagRecord]:
    """``{tag: TagRecord}`` over the run's finished experiments, in vocabulary-tag order."""
    raised: dict[str, list[str]] = {}
    lowered: dict[str, list[str]] = {}
    for arch in projection.of_run(run_id):
        verdict = _verdict(arch, projection)
        if verdict is None:
            continue
        parents = [projection.archs[p] for p in arch.parents if p in projection.archs]
        for text in introduced_tags(arch, parents):
            (raised if verdict else lowered).setdefault(text, []).append(arch.arch_id)
    return {
        text: TagRecord(tuple(raised.get(text, ())), tuple(lowered.get(text, ())))
        for text in sorted(set(raised) | set(lowered))
    }


def introduced_tags(arch: ArchitectureView, parents: list[ArchitectureView]) -> list[str]:
    """The tags of ``arch`` that none of ``parents`` has."""
    inherited = {f"{axis}={value}" for parent in parents for axis, value in parent.components.items()}
    return sorted(f"{axis}={value}" for axis, value in arch.components.items() if f"{axis}={value}" not in inherited)


def _verdict(arch: ArchitectureView, projection: Projection) -> bool | None:
    """True: raised fitness over every parent; False: lowered it or failed; None: does not count."""
    if arch.is_baseline or not arch.parents or arch.status == "rejected":
        return None
    if arch.failure and arch.status in ("failed", "discarded", "analyzed") and arch.fitness is None:
        return False
    if arch.fitness is None:
        return None  # still in flight
    scores = [projection.archs[p].fitness for p in arch.parents if p in projection.archs]
    if not scores or any(score is None for score in scores):
        return None
    if arch.fitness > max(scores):  # type: ignore[type-var]
        return True
    if arch.fitness < min(scores):  # type: ignore[type-var]
        return False
    return None
