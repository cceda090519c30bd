"""The discovery report: one self-contained HTML page drawn from the run analytics alone.

Every figure on the page comes from ``analytics.run_analytics`` (what ``report --json`` prints),
so the page and the JSON never disagree. Plots are PNGs from matplotlib's Agg backend, inlined
as base64; the page loads nothing from the network. A section with nothing to show says why
(no SOTA yet, one experiment, a failed baseline, a run in progress) instead of failing.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: render to memory

import matplotlib.pyplot as plt  # noqa: E402

COLOURS = {"baseline": "#4c72b0", "sota": "#dd8452", "judged": "#55a868", "failed": "#c44e52",
           "other": "#8c8c8c"}
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1180px; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.5em 0; }
td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } .num { text-align: right; font-variant-numeric: tabular-nums; }
.note { color: #855; font-style: italic; } .meta { color: #666; }
pre { background: #f8f8f8; padding: 0.8em; overflow-x: auto; font-size: 0.8em; max-height: 28em; }
img { max-width: 100%; } .sota { border: 1px solid #dd8452; padding: 0.5em 1em; margin: 1em 0; }
"""


def _png(fig: plt.Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return html.escape(str(value))


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f'<td class="num">{_fmt(c)}</td>' if isinstance(c, int | float)
                                    else f"<td>{_fmt(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _sota_curve(report: dict[str, Any]) -> str:
    curve = report["sota_curve"]
    if not curve["points"]:
        return _note("No training has finished yet: there is no compute to plot against.")
    fig, ax = plt.subplots(figsize=(7, 3.6))
    xs = [p["training_seconds"] for p in curve["points"]]
    ax.step(xs, [p["sota"] for p in curve["points"]], where="post", color=COLOURS["sota"], label="SOTA (promoted)")
    fit = curve["fit"]
    if fit.get("slope_per_hour") and fit.get("intercept") is not None:
        ax.plot(xs, [fit["intercept"] + fit["slope_per_hour"] * x / 3600 for x in xs], "--", color="#555",
                label=f"fit: {fit['slope_per_hour']:.3g} ± {fit['stderr_per_hour']:.2g} per hour")
    ax.set_xlabel("cumulative training seconds (candidates, baselines, re-runs)")
    ax.set_ylabel("cumulative SOTA")
    ax.legend(loc="upper left")
    text = _png(fig)
    if fit.get("note"):
        text += _note(fit["note"])
    return text


def _exploration(report: dict[str, Any]) -> str:
    curve = report["discovery_curve"]
    if not curve:
        return _note("No experiment has finished yet.")
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.plot([p["experiments"] for p in curve], [p["discoveries"] for p in curve], marker="o",
            color=COLOURS["judged"])
    ax.set_xlabel("experiments finished")
    ax.set_ylabel("cumulative count")
    ax.set_title("experiments whose fitness beats the best baseline's", fontsize=9)
    out = _png(fig)
    if len(curve) == 1:
        out += _note("A single experiment: the curve is one point.")
    return out


def _pareto(report: dict[str, Any]) -> str:
    pareto = report["component_pareto"]
    rows = pareto["components"][:15]
    if not rows:
        return _note("No trained experiment changed a component of the seed yet.")
    fig, ax = plt.subplots(figsize=(8, 3.8))
    names = [r["component"] for r in rows]
    positions = range(len(rows))
    ax.bar([i - 0.2 for i in positions], [r["trained_frequency"] for r in rows], width=0.4,
           color=COLOURS["other"], label="share of trained experiments")
    if pareto["sota"]:
        ax.bar([i + 0.2 for i in positions], [r["sota_frequency"] for r in rows], width=0.4, color=COLOURS["sota"],
               label="share of SOTA")
        share = ax.twinx()
        share.plot(list(positions), [r["cumulative_sota_share"] for r in rows], color="#333", marker=".",
                   label="cumulative share of SOTA components")
        share.set_ylim(0, 1.05)
        share.set_ylabel("cumulative SOTA share")
    ax.set_xticks(list(positions), names, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("frequency")
    ax.legend(loc="upper right", fontsize=8)
    out = _png(fig)
    if not pareto["sota"]:
        out += _note("No SOTA yet: only each component's frequency among trained experiments is shown.")
    return out + _table(["component", "trained", "SOTA", "trained freq.", "SOTA freq.", "cum. SOTA share"],
                        [[r["component"], r["trained"], r["sota"], r["trained_frequency"], r["sota_frequency"],
                          r["cumulative_sota_share"]] for r in rows])


def _origins(report: dict[str, Any]) -> str:
    shares = report["origin_shares"]
    origins = sorted({o for group in shares.values() for o in group["origins"]})
    if not origins:
        return _note("No trained experiment yet.")
    fig, ax = plt.subplots(figsize=(6, 3))
    for offset, (group, colour) in enumerate((("sota", COLOURS["sota"]), ("rest", COLOURS["other"]))):
        values = [shares[group]["origins"].get(o, {}).get("share", 0.0) for o in origins]
        ax.bar([i + 0.4 * offset - 0.2 for i in range(len(origins))], values, width=0.4, color=colour,
               label=f"{group} (n={shares[group]['total']})")
    ax.set_xticks(range(len(origins)), origins)
    ax.set_ylabel("share")
    ax.legend()
    out = _png(fig)
    if not shares["sota"]["total"]:
        out += _note("No SOTA yet: the SOTA bars are empty.")
    return out


def _fidelity(report: dict[str, Any]) -> str:
    fidelity = report["proxy_fidelity"]
    if not fidelity["candidates"]:
        return _note("No promotion has been decided yet: nothing to compare the exploration fitness with.")
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.scatter([r["fitness"] for r in fidelity["candidates"]], [r["mean_val_loss"] for r in fidelity["candidates"]],
               color=COLOURS["sota"])
    ax.set_xlabel("exploration fitness")
    ax.set_ylabel("re-runs' mean validation loss")
    out = _png(fig)
    if "note" in fidelity:
        return out + _note(fidelity["note"])
    return out + (f"<p>Spearman ρ (fitness vs −mean validation loss) {fidelity['spearman_val_loss']}, "
                  f"(fitness vs mean benchmark) {fidelity['spearman_benchmark']}, n = {fidelity['n']}.</p>")


HORIZONTAL_LABELS = 8  # more labels than this side by side on one level overlap; they are turned upright
LINEAGE_LABELS_PER_LEVEL = 40  # upright labels overlap beyond this many on the figure's width


def named_nodes(rows: dict[int, list[str]], by_id: dict[str, dict[str, Any]]) -> set[str]:
    """The lineage nodes that get a label: all of a level that fits, else its SOTA, baselines and fittest."""
    named: set[str] = set()
    for ids in rows.values():
        ranked = sorted(ids, key=lambda a: (not by_id[a]["sota"], not by_id[a]["is_baseline"],
                                            -(by_id[a]["fitness"] or 0.0)))
        named.update(ranked[:LINEAGE_LABELS_PER_LEVEL])
    return named


def _lineage(report: dict[str, Any]) -> str:
    nodes = report["lineage"]["nodes"]
    if not nodes:
        return _note("Nothing proposed yet.")
    by_id = {n["arch_id"]: n for n in nodes}
    depth: dict[str, int] = {}
    for node in nodes:  # log order: parents come first
        parents = [p for p in node["parents"] if p in by_id]
        depth[node["arch_id"]] = 1 + max((depth[p] for p in parents), default=-1)
    rows: dict[int, list[str]] = {}
    for arch_id, level in depth.items():
        rows.setdefault(level, []).append(arch_id)
    position = {a: (i - (len(ids) - 1) / 2, -level) for level, ids in rows.items() for i, a in enumerate(ids)}
    labelled = named_nodes(rows, by_id)
    width = max(len(ids) for ids in rows.values())
    crowded = width > HORIZONTAL_LABELS
    fig, ax = plt.subplots(figsize=(min(16, 2 + 1.3 * width), 1.2 + (2.4 if crowded else 1.1) * len(rows)))
    for edge in report["lineage"]["edges"]:
        (x0, y0), (x1, y1) = position[edge["parent"]], position[edge["child"]]
        ax.plot([x0, x1], [y0, y1], color="#bbb", zorder=1)
    for arch_id, (x, y) in position.items():
        node = by_id[arch_id]
        kind = ("sota" if node["sota"] else "baseline" if node["is_baseline"] else
                "failed" if node["fitness"] is None and node["status"] in {"analyzed", "discarded", "failed"} else
                "judged" if node["fitness"] is not None else "other")
        ax.scatter([x], [y], s=60 if crowded else 160, color=COLOURS[kind], zorder=2, edgecolors="#333")
        if arch_id not in labelled:
            continue
        fitness = "" if node["fitness"] is None else f"{node['fitness']:.3f}"
        if crowded:  # one upright line below the dot
            ax.annotate(f"{node['name'][:22]} {fitness}", (x, y), textcoords="offset points", xytext=(0, -8),
                        ha="center", va="top", fontsize=6, rotation=90)
        else:
            ax.annotate(f"{node['name'][:22]}\n{fitness}", (x, y), textcoords="offset points", xytext=(0, -22),
                        ha="center", fontsize=7)
    for kind, colour in COLOURS.items():
        ax.scatter([], [], color=colour, label=kind)
    ax.legend(loc="upper right", fontsize=7)
    ax.set_axis_off()
    ax.margins(0.15, 0.25)
    if len(labelled) < len(nodes):
        return _png(fig) + _note(f"{len(nodes) - len(labelled)} of {len(nodes)} nodes are unnamed: on a level "
                                 f"with more than {LINEAGE_LABELS_PER_LEVEL}, only the baselines, SOTA and the "
                                 "fittest are; the leaderboard lists them all.")
    return _png(fig)


def _baselines(report: dict[str, Any]) -> str:
    rows = report["baselines"]
    if not rows:
        return _note("No baseline has been proposed yet.")
    run = report["run"]
    out = _table(["baseline", "status", "fitness", "val loss", "benchmark mean", f"seed ({run['profile']})",
                  f"promotion seeds ({run['promotion_profile']})", "failure"],
                 [[b["name"], b["status"], b["fitness"], b["val_loss"], b["benchmark_mean"],
                   "-" if b["seed"] is None else b["seed"], ", ".join(map(str, b["replicate_seeds"])) or "-",
                   f"{b['failure'].get('kind')}: {b['failure'].get('message', '')[:120]}" if b["failure"] else "-"]
                  for b in rows])
    failed = [b["name"] for b in rows if b["failure"]]
    if failed:
        out += _note(f"Baseline(s) failed: {', '.join(failed)}. Candidates are judged against the baselines "
                     "that trained; with none, nothing is judged.")
    return out


def _leaderboard(report: dict[str, Any]) -> str:
    rows = report["leaderboard"][:25]
    if not rows:
        return _note("Nothing has been judged yet.")
    return _table(["rank", "arch", "name", "fitness", "val loss", "benchmark mean", "origin", "promotion", "leak rule"],
                  [[r["rank"], r["arch_id"], r["name"] + (" (baseline)" if r["is_baseline"] else ""), r["fitness"],
                    r["val_loss"], r["benchmark_mean"], r["origin"], r["promotion"] or "-", r["leak_check"] or "-"]
                   for r in rows])


def _promotions(report: dict[str, Any]) -> str:
    if not report["promotions"]:
        return _note("No candidate has been chosen for promotion (none beat every baseline's fitness yet).")
    parts = []
    for item in report["promotions"]:
        parts.append(f"<h3>{html.escape(item['name'])} <span class='meta'>{item['arch_id']}: "
                     f"{html.escape(item['status'])}</span></h3>")
        if item.get("decision"):
            parts.append(f"<p>{html.escape(item['decision'])}</p>")
        parts.append(_per_seed(item.get("per_seed", {})))
        statistics = item.get("statistics", {})
        if statistics:
            parts.append(_table(["baseline / metric", "differences", "mean", "t", "p", "passed"],
                                [[k, ", ".join(f"{d:+.4f}" for d in v["differences"]), v["mean_difference"],
                                  v["t"], v["p"], "yes" if v["passed"] else "no"] for k, v in statistics.items()]))
        if item.get("test"):
            parts.append(f"<p class='meta'>Test: {html.escape(item['test'])}</p>")
    return "".join(parts)


def _per_seed(per_seed: dict[str, dict[str, dict[str, float]]]) -> str:
    if not per_seed:
        return _note("Re-runs still in progress.")
    seeds = sorted({s for runs in per_seed.values() for s in runs}, key=int)
    return _table(["architecture", *(f"seed {s}: loss / bench" for s in seeds)],
                  [[arch, *(f"{runs[s]['val_loss']:.4f} / {runs[s]['benchmark_mean']:.3f}" if s in runs else "-"
                            for s in seeds)] for arch, runs in per_seed.items()])


def _leaks(report: dict[str, Any]) -> str:
    if not report["leaks"]:
        return _note("No result came within the leak rule's margin (10% below the best baseline's loss).")
    return _table(["arch", "name", "verdict", "reason"],
                  [[x["arch_id"], x["name"], x["verdict"], x["reason"]] for x in report["leaks"]])


def _gallery(report: dict[str, Any]) -> str:
    if not report["gallery"]:
        return _note("No SOTA architecture: no candidate has beaten both baselines beyond seed noise yet.")
    parts = []
    for item in report["gallery"]:
        cites = ", ".join(f"{c['entry_id']} ({c['kind']})" for c in item["citations"]) or "none"
        path = code_file(item["arch_id"])
        parts.append(
            f"<div class='sota'><h3>{html.escape(item['name'])} <span class='meta'>{item['arch_id']}, fitness "
            f"{_fmt(item['fitness'])}</span></h3><p>{html.escape(item['motivation'])}</p>"
            f"<p><b>Origin</b> {html.escape(item['origin'])}; <b>cites</b> {html.escape(cites)}; <b>lineage</b> "
            f"{html.escape(' ← '.join(item['ancestors']) or 'none')}</p><p>{html.escape(item['decision'])}</p>"
            f"{_per_seed(item['per_seed'])}<p class='meta'>code file: <code>{path}</code> (<code>asi-arch train "
            f"{path} --profile {html.escape(report['run']['promotion_profile'])} --seed S</code> re-trains it)</p>"
            f"<details><summary>code</summary><pre>{html.escape(item['code'])}"
            "</pre></details></div>")
    return "".join(parts)


def render(report: dict[str, Any]) -> str:
    run = report["run"]
    state = f"finished: {run['reason']}" if run["finished"] else "in progress: figures so far"
    rate = report["sota_rate"]
    sections = [
        ("Baselines", _baselines(report)),
        ("Leaderboard", _leaderboard(report)),
        ("Discovery curve: SOTA against compute", _sota_curve(report)),
        ("Exploration: experiments above the best baseline's fitness", _exploration(report)),
        ("Lineage", _lineage(report)),
        ("Component Pareto", _pareto(report)),
        ("Origins: SOTA against the rest", _origins(report)),
        ("Proxy fidelity: exploration fitness against the re-runs", _fidelity(report)),
        ("Promotions", _promotions(report)),
        ("Leak rule", _leaks(report)),
        ("SOTA gallery", _gallery(report)),
    ]
    summary = (f"{report['experiments']} experiments, {report['discoveries']} above the best baseline's fitness "
               f"({report['baseline_fitness']:.4f}), {rate['sota']} SOTA of {rate['trained']} trained"
               + (f" (rate {rate['rate']:.3f})" if rate["rate"] is not None else ""))
    body = "".join(f"<h2>{html.escape(title)}</h2>{content}" for title, content in sections)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>ASI-Arch report {run['run_id']}</title>"
            f"<style>{STYLE}</style></head><body><h1>ASI-Arch discovery report</h1>"
            f"<p class='meta'>run {html.escape(run['run_id'])}"
            f"{', preset ' + html.escape(run['preset']) if run['preset'] else ''}, profile "
            f"{html.escape(run['profile'])} (promotions at {html.escape(run['promotion_profile'])}), budget "
            f"{run['budget']}, seed {run['seed']}: {html.escape(state)}</p><p>{html.escape(summary)}</p>"
            f"{body}</body></html>")


def code_file(arch_id: str) -> str:
    """Where the report puts a SOTA architecture's code, relative to its folder."""
    return f"sota/{arch_id}.py"


def write(report: dict[str, Any], out_dir: Path) -> Path:
    """``out_dir/index.html``, and each SOTA architecture's code as a file beside it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for item in report["gallery"]:
        code = out_dir / code_file(item["arch_id"])
        code.parent.mkdir(exist_ok=True)
        code.write_text(item["code"])
    path = out_dir / "index.html"
    path.write_text(render(report))
    return path
