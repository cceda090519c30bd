"""The offline analyst: explains a result against its parent and the baseline, in words
and tags the researcher can act on. Every number comes from the projection."""

from __future__ import annotations

from dataclasses import dataclass

from services.runtime.projection import ArchitectureView


@dataclass(frozen=True)
class Analysis:
    summary: str
    outcome: str  # "baseline" | "improved" | "regressed" | "failed"
    tags: tuple[str, ...]
    changes: str


def component_changes(arch: ArchitectureView, parent: ArchitectureView | None) -> list[tuple[str, str, str]]:
    """(axis, parent value, child value) for each component that differs."""
    if parent is None:
        return []
    axes = sorted(set(arch.components) | set(parent.components))
    return [(axis, parent.components.get(axis, "-"), arch.components.get(axis, "-"))
            for axis in axes if arch.components.get(axis) != parent.components.get(axis)]


def _delta(value: float, reference: float) -> str:
    return f"{value:.4f} vs {reference:.4f} ({(value - reference) / abs(reference or 1):+.1%})"


def analyze(arch: ArchitectureView, parent: ArchitectureView | None, baseline: ArchitectureView | None) -> Analysis:
    changes = component_changes(arch, parent)
    changed = "; ".join(f"{axis}: {old} -> {new}" for axis, old, new in changes) or "no component change"
    tags = tuple(f"{axis}={new}" for axis, _, new in changes if new != "-")
    cited = ", ".join(c["entry_id"] for c in arch.citations)
    origin = f" (origin {arch.origin}{'; cites ' + cited if cited else ''})"

    if arch.is_baseline:
        r = arch.result
        summary = (f"Baseline {arch.name}: val_loss {r.get('val_loss', 0):.4f}, benchmark mean "
                   f"{r.get('benchmark_mean', 0):.3f}; the reference every candidate of this run is judged against.")
        return Analysis(summary, "baseline", tags, changed)
    if arch.failure:
        summary = (f"{arch.name} changed {changed}{origin} and failed ({arch.failure['kind']}): "
                   f"{arch.failure['message'][:300]}. Avoid this change or repair it.")
        return Analysis(summary, "failed", tags, changed)

    reference = parent if parent is not None and parent.fitness is not None else baseline
    ref_fitness = reference.fitness if reference is not None and reference.fitness is not None else 0.5
    outcome = "improved" if (arch.fitness or 0.0) > ref_fitness else "regressed"
    parts = [f"{arch.name} changed {changed}{origin}."]
    if reference is not None and reference.result:
        mine, theirs = arch.result, reference.result
        parts.append(f"Against {reference.name}: val_loss {_delta(mine['val_loss'], theirs['val_loss'])}, "
                     f"benchmark mean {_delta(mine['benchmark_mean'], theirs['benchmark_mean'])}.")
        worse_tasks = [t for t, acc in arch.result.get("benchmarks", {}).items()
                       if acc + 0.02 < reference.result.get("benchmarks", {}).get(t, acc)]
        if worse_tasks:
            parts.append(f"Lower accuracy on {', '.join(sorted(worse_tasks))}.")
    parts.append(f"Fitness {arch.fitness:.4f} vs {ref_fitness:.4f}: {outcome}.")
    return Analysis(" ".join(parts), outcome, tags, changed)
