"""Baselines trained in the same harness as candidates, cached by (code hash, profile, seed).

A baseline's result depends only on its code, the profile and the seed, so it is trained once
per data dir and read back afterwards; the key also covers the profile's settings, so editing
a profile retrains instead of reusing a result from different settings.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from services.engineer.baselines import BASELINES, baseline_code
from services.engineer.harness import run_experiment
from services.engineer.profiles import get_profile
from services.runtime.private import private_folder


def cache_key(code: str, profile: str, seed: int) -> str:
    settings = json.dumps(asdict(get_profile(profile)), sort_keys=True)
    code_hash = hashlib.sha256(code.encode()).hexdigest()
    settings_hash = hashlib.sha256(settings.encode()).hexdigest()
    return f"{code_hash[:16]}-{profile}-{settings_hash[:8]}-seed{seed}"


def baseline_result(name: str, profile: str, seed: int, data_dir: Path, *, corpus: str | None = None,
                    on_progress: Callable[[dict], None] | None = None) -> dict:
    """One baseline run, from the cache when it was run before (the result then says ``cached``)."""
    code = baseline_code(name)
    path = data_dir / "baselines" / f"{cache_key(code, profile, seed)}.json"
    if corpus is None and path.exists():
        return {**json.loads(path.read_text()), "cached": True}
    result = run_experiment(code, profile, seed, corpus=corpus, on_progress=on_progress, data_dir=data_dir)
    result = {"name": name, "profile": profile, "seed": seed, **result}
    if corpus is None and result["ok"]:  # failures are not cached: they may be the machine's fault
        private_folder(path.parent)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(result, indent=1))
        tmp.replace(path)
    return {**result, "cached": False}


def _mean_and_spread(values: list[float]) -> tuple[float, float]:
    return sum(values) / len(values), max(values) - min(values)


def summarise(runs: list[dict]) -> dict:
    """Mean and spread over seeds of the figures the judge compares against."""
    done = [r for r in runs if r["ok"]]
    summary: dict = {"seeds": [r["seed"] for r in runs], "ok": len(done) == len(runs)}
    if not done:
        return summary
    for figure in ("val_loss", "benchmark_mean", "tokens_per_s", "train_seconds"):
        summary[figure], summary[f"{figure}_spread"] = _mean_and_spread([r[figure] for r in done])
    per_task = {task: _mean_and_spread([r["benchmarks"][task] for r in done]) for task in done[0]["benchmarks"]}
    summary["benchmarks"] = {task: mean for task, (mean, _) in per_task.items()}
    summary["benchmarks_spread"] = {task: spread for task, (_, spread) in per_task.items()}
    summary["params"] = done[0]["params"]
    summary["complexity_exponent"] = done[0]["checks"]["complexity"]["exponent"]
    return summary


def run_baselines(profile: str, seeds: int, data_dir: Path, *, names: tuple[str, ...] = BASELINES,
                  corpus: str | None = None, on_run: Callable[[dict], None] | None = None,
                  on_progress: Callable[[dict], None] | None = None) -> dict:
    """Every named baseline under ``profile`` at seeds ``0..seeds-1``: per-run results and a summary."""
    table = {}
    for name in names:
        runs = []
        for seed in range(seeds):
            result = baseline_result(name, profile, seed, data_dir, corpus=corpus, on_progress=on_progress)
            runs.append(result)
            if on_run:
                on_run(result)
        table[name] = {"runs": runs, **summarise(runs)}
    return {"ok": all(entry["ok"] for entry in table.values()), "profile": profile, "seeds": seeds,
            "baselines": table, "separation": separation(table)}


def separation(baselines: dict) -> dict | None:
    """Does the capability suite tell the baselines apart beyond seed noise?

    The gap between the best and the worst baseline's mean capability must exceed three times the
    largest seed spread (max - min over seeds) of any baseline: the strictest reading of "noise".
    """
    done = {name: entry for name, entry in baselines.items() if entry.get("ok")}
    if len(done) < 2:
        return None
    best = max(done, key=lambda name: done[name]["benchmark_mean"])
    worst = min(done, key=lambda name: done[name]["benchmark_mean"])
    noisiest = max(done, key=lambda name: done[name]["benchmark_mean_spread"])
    gap = done[best]["benchmark_mean"] - done[worst]["benchmark_mean"]
    noise = done[noisiest]["benchmark_mean_spread"]
    return {"best": best, "worst": worst, "gap": gap, "noisiest": noisiest, "largest_seed_spread": noise,
            "separates": gap > 3 * noise}


def render_markdown(table: dict, command: str) -> str:
    """The baseline table as Markdown, every figure taken from ``table`` (what a run produced)."""
    tasks = next((e["benchmarks"] for e in table["baselines"].values() if e.get("benchmarks")), {})
    header = ["baseline", "val loss (nats/byte)", *tasks, "benchmark mean", "params", "tokens/s", "MFU",
              "train s", "T-exponent"]
    lines = [
        f"# Baselines under the `{table['profile']}` profile",
        "",
        f"Produced by `{command}` (seeds 0..{table['seeds'] - 1}): each cell is the mean over seeds,",
        "with the seed spread (max - min) in brackets.",
        "Validation loss is on held-out files of the corpus; task accuracies are on held-out instances;",
        "tokens/s counts text and task tokens; MFU is matmul FLOPs per second over this machine's",
        "measured fp32 matmul peak; the T-exponent is the complexity probe's cost-growth exponent.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for name, entry in table["baselines"].items():
        if not entry.get("ok"):
            failure = next((r["failure"] for r in entry["runs"] if not r["ok"]), {})
            lines.append(f"| {name} | failed: {failure.get('kind', '?')} |" + " |" * (len(header) - 2))
            continue
        runs = entry["runs"]
        mfu = sum(r["mfu"] for r in runs) / len(runs)
        cells = [
            name,
            f"{entry['val_loss']:.3f} ({entry['val_loss_spread']:.3f})",
            *(f"{entry['benchmarks'][task]:.3f} ({entry['benchmarks_spread'][task]:.3f})" for task in tasks),
            f"{entry['benchmark_mean']:.3f} ({entry['benchmark_mean_spread']:.3f})",
            f"{entry['params']:,}",
            f"{entry['tokens_per_s']:,.0f}",
            f"{mfu:.1%}",
            f"{entry['train_seconds']:.0f}",
            f"{entry['complexity_exponent']:.2f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    split = table.get("separation")
    if split:
        verdict = "exceeds" if split["separates"] else "does NOT exceed"
        noise = split["largest_seed_spread"]
        lines += ["", f"Separation: best ({split['best']}) minus worst ({split['worst']}) on the benchmark mean is "
                  f"{split['gap']:.3f}, which {verdict} three times the largest seed spread "
                  f"({split['noisiest']}: 3 x {noise:.3f} = {3 * noise:.3f})."]
    return "\n".join(lines) + "\n"
