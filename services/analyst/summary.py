"""A run's figures as Markdown, for a README: `asi-arch report --markdown FILE`.

A pure function of the report's JSON (``analytics.run_analytics``), so the text is reproduced
from the log alone; the README's "Discoveries" section is this output, and a test re-derives it
from the committed log. The paper's figures beside ours are quoted from Liu et al. 2025 (ASI-Arch).
"""

from __future__ import annotations

from typing import Any

# Liu et al. 2025, "AlphaGo Moment for Model Architecture Discovery": what our figures stand beside.
PAPER = {
    "sota_rate": "106 of 1,773 experiments (6.0%)",
    "origins": "cognition 48.6%, experience 44.8%, original 6.6%",
    "components": "gating and convolution carry most wins",
    "fidelity": "not stated as a number; the released SOTA set's search score barely predicts the verified one",
    "curve": "linear in compute",
}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _names(report: dict[str, Any]) -> dict[str, str]:
    return {row["arch_id"]: row["name"] for row in report["lineage"]["nodes"]}


def _origins(group: dict[str, Any]) -> str:
    if not group["total"]:
        return "none"
    return ", ".join(f"{name} {row['share']:.1%} ({row['count']})" for name, row in group["origins"].items())


def _promotion_rows(report: dict[str, Any], names: dict[str, str]) -> list[str]:
    fitness = {row["arch_id"]: row["fitness"] for row in report["leaderboard"]}
    rows = []
    for item in report["promotions"]:
        if item["status"] not in {"promoted", "denied"} or not item.get("per_seed"):
            rows.append(f"| {names[item['arch_id']]} | {fitness.get(item['arch_id'])} | {item['status']} | - | - | - |")
            continue
        per_seed = item["per_seed"]
        order = [item["arch_id"], *item["baselines"]]
        loss = " / ".join(f"{_mean([r['val_loss'] for r in per_seed[a].values()]):.4f}" for a in order if a in per_seed)
        bench = " / ".join(f"{_mean([r['benchmark_mean'] for r in per_seed[a].values()]):.3f}"
                           for a in order if a in per_seed)
        tests = "; ".join(f"{metric.replace('_', ' ')} vs {names[base]}: p {row['p']:.3f}"
                          for key, row in sorted(item["statistics"].items())
                          for base, metric in [key.split("/")])
        verdict = "**SOTA**" if item["status"] == "promoted" else "denied"
        rows.append(f"| {names[item['arch_id']]} (`{item['arch_id']}`) | {fitness.get(item['arch_id']):.4f} "
                    f"| {verdict} | {loss} | {bench} | {tests} |")
    return rows


def _per_seed_table(item: dict[str, Any], names: dict[str, str]) -> list[str]:
    per_seed = item["per_seed"]
    seeds = sorted({s for runs in per_seed.values() for s in runs}, key=int)
    lines = ["| architecture | " + " | ".join(f"seed {s}: val loss / benchmark mean" for s in seeds) + " |",
             "|---|" + "---|" * len(seeds)]
    for arch in [item["arch_id"], *sorted(a for a in per_seed if a != item["arch_id"])]:
        runs = per_seed[arch]
        cells = [f"{runs[s]['val_loss']:.4f} / {runs[s]['benchmark_mean']:.3f}" if s in runs else "-" for s in seeds]
        lines.append(f"| {names.get(arch, arch)} | " + " | ".join(cells) + " |")
    return lines


def markdown(report: dict[str, Any]) -> str:
    run, names, rate = report["run"], _names(report), report["sota_rate"]
    curve, fidelity, pareto = report["sota_curve"], report["proxy_fidelity"], report["component_pareto"]
    preset = f"preset `{run['preset']}`: " if run["preset"] else ""
    lines = [
        f"Run `{run['run_id']}` ({preset}profile `{run['profile']}`, promotions at `{run['promotion_profile']}`, "
        f"seed {run['seed']}, {'finished: ' + run['reason'] if run['finished'] else 'in progress'}): "
        f"{rate['trained']} experiments trained, {report['discoveries']} above the best baseline's exploration "
        f"fitness ({report['baseline_fitness']:.4f}), {len(report['promotions'])} promoted for re-runs, "
        f"{rate['sota']} SOTA; {curve['training_seconds'] / 3600:.2f} hours of training in all.",
        "",
        "Promotions (means over the re-runs' seeds; candidate / "
        + " / ".join(b["name"] for b in report["baselines"]) + "; one-sided paired t-tests over seeds):",
        "",
        "| candidate | exploration fitness | decision | val loss | benchmark mean | tests |",
        "|---|---|---|---|---|---|",
        *_promotion_rows(report, names),
    ]
    for item in report["gallery"]:
        lines += ["", f"**{item['name']}** (`{item['arch_id']}`, origin {item['origin']}, lineage "
                  f"{' ← '.join(names.get(a, a) for a in item['ancestors']) or 'none'}): {item['motivation']}", "",
                  *_per_seed_table(item, names)]
    top = [row for row in pareto["components"] if row["sota"]][:3]
    components = ", ".join(f"`{row['component']}` ({row['sota']} of {pareto['sota']} SOTA, "
                           f"{row['trained_frequency']:.0%} of trained)" for row in top) or "no SOTA yet"
    if "spearman_val_loss" in fidelity:
        proxy = (f"Spearman ρ {fidelity['spearman_val_loss']:+.2f} (validation loss), "
                 f"{fidelity['spearman_benchmark']:+.2f} (benchmark mean) over {fidelity['n']} promoted candidates")
    else:
        proxy = fidelity["note"]
    fit = curve["fit"]
    slope = (f"{fit['slope_per_hour']:.2f} ± {fit['stderr_per_hour']:.2f} SOTA per training hour"
             if fit.get("stderr_per_hour") is not None else fit.get("note", "-"))
    lines += [
        "",
        "| figure | this run | the paper |",
        "|---|---|---|",
        f"| SOTA rate per trained experiment | {rate['sota']} of {rate['trained']}"
        + (f" ({rate['rate']:.1%})" if rate["rate"] is not None else "") + f" | {PAPER['sota_rate']} |",
        f"| origins of SOTA | {_origins(report['origin_shares']['sota'])} | {PAPER['origins']} |",
        f"| origins of the rest | {_origins(report['origin_shares']['rest'])} | - |",
        f"| top components among SOTA | {components} | {PAPER['components']} |",
        f"| proxy fidelity | {proxy} | {PAPER['fidelity']} |",
        f"| discovery curve | {slope} | {PAPER['curve']} |",
    ]
    return "\n".join(lines) + "\n"
