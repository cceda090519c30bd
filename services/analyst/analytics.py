"""Run analytics: pure functions of the projection (the fold of the log), so a live run, a data
dir and an exported file give the same figures.

Two kinds of success are counted apart. A *discovery* is an experiment whose exploration fitness
beats the best baseline's (the cheap, single-seed signal the search runs on, and the paper's
count). A *SOTA* architecture is one the judge promoted after seed-replicated re-runs beside
both baselines (``ArchitecturePromoted``): the verified outcome. The paper's analyses (discovery
curve, component Pareto, origin shares) are computed on SOTA; proxy fidelity says how well the
cheap signal predicted the verified one.
"""

from __future__ import annotations

import math
from typing import Any

from scipy import stats

from services.runtime.projection import ArchitectureView, Projection

ORIGIN_NAMES = {"literature": "cognition"}  # the agreed vocabulary: a literature origin is "cognition"
MIN_FIT_POINTS = 3  # a slope and its uncertainty need at least three distinct compute points


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, digits)


def trained(p: Projection, run_id: str) -> list[ArchitectureView]:
    """Experiments (not baselines) with a result of their own, in log order."""
    return [a for a in p.experiments(run_id) if a.result]


def sota(p: Projection, run_id: str) -> list[ArchitectureView]:
    return [a for a in p.of_run(run_id) if a.promotion.get("status") == "promoted"]


def best_baseline_fitness(p: Projection, run_id: str) -> float:
    judged = [b.fitness for b in p.baselines(run_id) if b.fitness is not None]
    return max(judged) if judged else 0.5


def exploration(p: Projection, run_id: str) -> dict[str, Any]:
    """Discoveries (exploration fitness above the best baseline's) over experiments, their origins,
    and each component's tries and wins."""
    experiments = [a for a in p.experiments(run_id) if a.fitness is not None or a.terminal]
    bar = best_baseline_fitness(p, run_id)
    wins = [a for a in experiments if a.fitness is not None and a.fitness > bar]
    curve, found = [], 0
    for n, arch in enumerate(experiments, start=1):
        found += arch in wins
        curve.append({"experiments": n, "discoveries": found})
    origins: dict[str, int] = {}
    for arch in wins:
        origins[arch.origin] = origins.get(arch.origin, 0) + 1
    components: dict[str, dict[str, int]] = {}
    for arch in experiments:
        for axis, value in arch.components.items():
            row = components.setdefault(f"{axis}={value}", {"tried": 0, "won": 0})
            row["tried"] += 1
            row["won"] += arch in wins
    return {
        "experiments": len(experiments), "discoveries": len(wins), "baseline_fitness": bar,
        "discovery_curve": curve,
        "origins_of_discoveries": {k: {"count": v, "share": round(v / len(wins), 4)}
                                   for k, v in sorted(origins.items())},
        "components": {k: {**v, "win_rate": round(v["won"] / v["tried"], 4)}
                       for k, v in sorted(components.items())},
    }


def leaderboard(p: Projection, run_id: str) -> list[dict[str, Any]]:
    return [{"rank": rank, "arch_id": a.arch_id, "name": a.name, "fitness": _round(a.fitness),
             "val_loss": _round(a.result.get("val_loss")), "benchmark_mean": _round(a.result.get("benchmark_mean")),
             "origin": ORIGIN_NAMES.get(a.origin, a.origin), "is_baseline": a.is_baseline,
             "promotion": a.promotion.get("status", ""), "leak_check": a.leak.get("verdict", "")}
            for rank, a in enumerate(p.leaderboard(run_id), start=1)]


def lineage_tree(p: Projection, run_id: str) -> dict[str, Any]:
    archs = p.of_run(run_id)
    nodes = [{"arch_id": a.arch_id, "name": a.name, "parents": a.parents, "status": a.status,
              "fitness": _round(a.fitness), "is_baseline": a.is_baseline,
              "sota": a.promotion.get("status") == "promoted", "origin": ORIGIN_NAMES.get(a.origin, a.origin)}
             for a in archs]
    known = {a.arch_id for a in archs}
    edges = [{"parent": parent, "child": a.arch_id} for a in archs for parent in a.parents if parent in known]
    return {"nodes": nodes, "edges": edges}


def discovery_curve(p: Projection, run_id: str) -> dict[str, Any]:
    """Cumulative SOTA count against cumulative training seconds, with a least-squares slope.

    All compute counts (candidates, baselines and re-runs): one point per finished training and
    one per promotion, in log order. The slope's standard error is the ordinary least-squares one;
    the points of a step curve are not independent, so it is optimistic.
    """
    steps: list[tuple[int, float | None]] = []  # (sequence, training seconds or None for a promotion)
    for a in p.of_run(run_id):
        for result in [a.result, *(r.get("result", {}) for r in a.replicates.values())]:
            if result:
                steps.append((result["sequence"], result["train_seconds"]))
        if a.promotion.get("status") == "promoted":
            steps.append((a.promotion["sequence"], None))
    points, seconds, found = [], 0.0, 0
    for _, spent in sorted(steps, key=lambda step: step[0]):
        if spent is None:
            found += 1
        else:
            seconds += spent
        points.append({"training_seconds": round(seconds, 3), "sota": found})
    xs, ys = [pt["training_seconds"] for pt in points], [pt["sota"] for pt in points]
    fit: dict[str, Any] = {"points": len(points)}
    if len(set(xs)) < MIN_FIT_POINTS:
        fit["note"] = f"fewer than {MIN_FIT_POINTS} trainings: no slope"
    elif not found:
        fit.update(slope_per_hour=0.0, stderr_per_hour=None, note="no SOTA yet: the curve is flat at zero")
    else:
        line = stats.linregress(xs, ys)
        fit.update(slope_per_hour=_round(line.slope * 3600), stderr_per_hour=_round(line.stderr * 3600),
                   intercept=_round(line.intercept), r=_round(line.rvalue))
    return {"points": points, "sota": found, "training_seconds": round(seconds, 3), "fit": fit}


def component_tags(arch: ArchitectureView, seed: ArchitectureView | None) -> list[str]:
    """The components an architecture changed against the seed: what the search tried."""
    base = seed.components if seed is not None else {}
    return sorted(f"{k}={v}" for k, v in arch.components.items() if base.get(k) != v)


def component_pareto(p: Projection, run_id: str) -> dict[str, Any]:
    """Each changed component's frequency among trained experiments and among SOTA, ranked by its
    SOTA count, and the cumulative share of SOTA occurrences held by the top components."""
    seed = p.baseline(run_id)
    all_trained, winners = trained(p, run_id), sota(p, run_id)
    counts: dict[str, dict[str, int]] = {}
    for arch in all_trained:
        for tag in component_tags(arch, seed):
            row = counts.setdefault(tag, {"trained": 0, "sota": 0})
            row["trained"] += 1
            row["sota"] += arch in winners
    total_sota = sum(r["sota"] for r in counts.values())
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1]["sota"], -kv[1]["trained"], kv[0]))
    rows, held = [], 0
    for tag, row in ranked:
        held += row["sota"]
        rows.append({"component": tag, "trained": row["trained"], "sota": row["sota"],
                     "trained_frequency": round(row["trained"] / len(all_trained), 4),
                     "sota_frequency": round(row["sota"] / len(winners), 4) if winners else None,
                     "cumulative_sota_share": round(held / total_sota, 4) if total_sota else None})
    return {"components": rows, "trained": len(all_trained), "sota": len(winners)}


def origin_shares(p: Projection, run_id: str) -> dict[str, Any]:
    """Where the ideas came from, for SOTA and for the rest of the trained experiments."""
    winners = sota(p, run_id)
    groups = {"sota": winners, "rest": [a for a in trained(p, run_id) if a not in winners]}
    out: dict[str, Any] = {}
    for group, archs in groups.items():
        counts: dict[str, int] = {}
        for arch in archs:
            origin = ORIGIN_NAMES.get(arch.origin, arch.origin)
            counts[origin] = counts.get(origin, 0) + 1
        out[group] = {"total": len(archs), "origins": {k: {"count": v, "share": round(v / len(archs), 4)}
                                                       for k, v in sorted(counts.items())}}
    return out


def proxy_fidelity(p: Projection, run_id: str) -> dict[str, Any]:
    """Spearman rank correlation between exploration fitness and the promoted re-runs' means
    (validation loss negated, so that higher is better on both sides; and benchmark mean)."""
    rows = []
    for arch in p.of_run(run_id):
        per_seed = arch.promotion.get("per_seed", {}).get(arch.arch_id)
        if arch.promotion.get("status") in {"promoted", "denied"} and per_seed and arch.fitness is not None:
            runs = list(per_seed.values())
            rows.append({"arch_id": arch.arch_id, "fitness": arch.fitness,
                         "mean_val_loss": sum(r["val_loss"] for r in runs) / len(runs),
                         "mean_benchmark": sum(r["benchmark_mean"] for r in runs) / len(runs)})
    out: dict[str, Any] = {"candidates": rows, "n": len(rows)}
    if len(rows) < 3:
        out["note"] = f"{len(rows)} decided promotion(s): a rank correlation needs at least 3"
        return out
    fitness = [r["fitness"] for r in rows]
    for key, values in (("spearman_val_loss", [-r["mean_val_loss"] for r in rows]),
                        ("spearman_benchmark", [r["mean_benchmark"] for r in rows])):
        rho = stats.spearmanr(fitness, values).statistic
        out[key] = _round(float(rho))
    return out


def sota_rate(p: Projection, run_id: str) -> dict[str, Any]:
    n, k = len(trained(p, run_id)), len(sota(p, run_id))
    return {"trained": n, "sota": k, "rate": round(k / n, 4) if n else None}


def baseline_status(p: Projection, run_id: str) -> list[dict[str, Any]]:
    return [{"arch_id": b.arch_id, "name": b.name, "status": b.status, "fitness": _round(b.fitness),
             "val_loss": _round(b.result.get("val_loss")), "benchmark_mean": _round(b.result.get("benchmark_mean")),
             "failure": b.failure, "seed": b.seed if b.result else None,
             "replicate_seeds": sorted(s for s, r in b.replicates.items() if r.get("result"))}
            for b in p.baselines(run_id)]


def gallery(p: Projection, run_id: str) -> list[dict[str, Any]]:
    """Each SOTA architecture with what a reader needs to trust it: code, motivation, origin,
    citations, lineage and the per-seed results of its re-runs beside the baselines'."""
    return [{"arch_id": a.arch_id, "name": a.name, "motivation": a.motivation, "origin": ORIGIN_NAMES.get(a.origin,
                                                                                                        a.origin),
             "citations": a.citations, "ancestors": p.ancestors(a.arch_id), "fitness": _round(a.fitness),
             "per_seed": a.promotion.get("per_seed", {}), "decision": a.promotion.get("decision", ""),
             "test": a.promotion.get("test", ""), "code": a.code}
            for a in sota(p, run_id)]


def run_analytics(p: Projection, run_id: str) -> dict[str, Any]:
    """Every figure of the report, as one JSON-ready object."""
    run = p.runs[run_id]
    return {
        "run": {"run_id": run.run_id, "profile": run.profile, "promotion_profile": run.promoted_at,
                "preset": run.preset, "budget": run.experiments, "seed": run.seed, "finished": run.finished,
                "reason": run.reason},
        **exploration(p, run_id),
        "baselines": baseline_status(p, run_id),
        "leaderboard": leaderboard(p, run_id),
        "lineage": lineage_tree(p, run_id),
        "sota_curve": discovery_curve(p, run_id),
        "component_pareto": component_pareto(p, run_id),
        "origin_shares": origin_shares(p, run_id),
        "proxy_fidelity": proxy_fidelity(p, run_id),
        "sota_rate": sota_rate(p, run_id),
        "promotions": [{"arch_id": a.arch_id, "name": a.name, **a.promotion} for a in p.of_run(run_id)
                       if a.promotion],
        "leaks": [{"arch_id": a.arch_id, "name": a.name, **a.leak} for a in p.of_run(run_id) if a.leak],
        "gallery": gallery(p, run_id),
    }
