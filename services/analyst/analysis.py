"""The offline analyst: explains a result against its parent and the baseline, in words
and tags the researcher can act on. Every number comes from the projection."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

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


DIFF_CHARS = 20_000  # a whole rewrite is still readable; beyond that the log would carry two copies of the code
METRICS = ("val_loss", "benchmark_mean", "tokens_per_s", "fitness")


def code_diff(arch: ArchitectureView, parent: ArchitectureView | None) -> str:
    """The unified diff of the candidate's file against its parent's (empty without a parent)."""
    if parent is None:
        return ""
    diff = "".join(difflib.unified_diff(parent.code.splitlines(keepends=True), arch.code.splitlines(keepends=True),
                                        fromfile=f"{parent.arch_id}.py", tofile=f"{arch.arch_id}.py"))
    return diff if len(diff) <= DIFF_CHARS else diff[:DIFF_CHARS] + "\n... (diff cut at 20,000 characters)\n"


def _metric(view: ArchitectureView, name: str) -> float | None:
    return view.fitness if name == "fitness" else view.result.get(name)


def effects(arch: ArchitectureView, parent: ArchitectureView | None, siblings: list[ArchitectureView],
            baselines: list[ArchitectureView]) -> dict[str, Any]:
    """Each metric against the parent, the siblings' mean and every baseline: value, reference, change."""
    references: dict[str, dict[str, float]] = {}
    for label, views in ([("parent", [parent])] if parent is not None else []) + [("siblings", siblings)] + [
            (f"baseline:{b.arch_id}", [b]) for b in baselines]:
        row = {}
        for name in METRICS:
            values = [v for v in (_metric(view, name) for view in views) if v is not None]
            if values:
                row[name] = sum(values) / len(values)
        if row:
            references[label] = row
    out: dict[str, Any] = {}
    for name in METRICS:
        mine = _metric(arch, name)
        if mine is None:
            continue
        out[name] = {"value": mine, **{label: {"reference": row[name], "change": mine - row[name]}
                                       for label, row in references.items() if name in row}}
    out["siblings"] = [s.arch_id for s in siblings]
    return out


def _delta(value: float, reference: float) -> str:
    return f"{value:.4f} vs {reference:.4f} ({(value - reference) / abs(reference or 1):+.1%})"


def analyze(arch: ArchitectureView, parent: ArchitectureView | None, baseline: ArchitectureView | None,
            others: list[ArchitectureView] = ()) -> Analysis:
    """``baseline`` is the seed (the reference without a judged parent); ``others`` the run's other
    baselines, whose deltas join the summary."""
    changes = component_changes(arch, parent)
    changed = ("; ".join(f"{axis}: {old} -> {new}" for axis, old, new in changes)
               or "its code, outside the genome's components")
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
    for other in [b for b in (baseline, *others) if b is not None and b is not reference and b.result]:
        parts.append(f"Against baseline {other.name}: val_loss "
                     f"{_delta(arch.result['val_loss'], other.result['val_loss'])}, benchmark mean "
                     f"{_delta(arch.result['benchmark_mean'], other.result['benchmark_mean'])}.")
    parts.append(f"Fitness {arch.fitness:.4f} vs {ref_fitness:.4f}: {outcome}.")
    return Analysis(" ".join(parts), outcome, tags, changed)
