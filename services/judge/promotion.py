"""Promotion to SOTA: which candidates are re-trained on more seeds, and the test that decides.

A candidate is SOTA only if, over the same seeds, it beats every baseline on validation loss
(lower) and on the benchmark mean (higher) by more than seed-to-seed noise. The test, for each
baseline and each of the two metrics, is a one-sided paired t-test over seeds of the per-seed
differences (candidate better is positive) at the 5% level: the candidate passes only if every
one of the tests rejects "no improvement". With n seeds the statistic has n - 1 degrees of
freedom; with zero spread the test passes exactly when every difference is positive.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from scipy import stats

ALPHA = 0.05
TEST = ("one-sided paired t-test over seeds of the per-seed differences (candidate better is positive), "
        f"for each baseline on validation loss and on benchmark mean; SOTA only if every p < {ALPHA}")
# A candidate worse than a baseline on its first seed would need the other seeds to outweigh that
# difference by the t-test's margin; the screen spends one re-run per candidate, not one per seed,
# on those (the fifth discovery run spent 12 re-runs on four candidates behind on the first seed).
SCREEN = ("screened first: re-trained on its first seed alone, and on the others only if it beats every "
          "baseline on both metrics there")
METRICS = {"val_loss": -1.0, "benchmark_mean": 1.0}  # sign that makes "candidate better" positive
# A candidate whose fitness term on loss or on the benchmarks is below this at exploration trails the
# stronger baseline there by more than about 5% of its loss or 0.055 of its benchmark mean
# (services/judge/fitness.py squashes both): re-running it on more seeds is unlikely to make it SOTA,
# which needs both. The first discovery run spent its five promotions on such candidates, every one denied.
TERM_FLOOR = 0.1
MEASURED_TERMS = ("loss", "benchmark")


@dataclass(frozen=True)
class PromotionConfig:
    top_k: int = 3  # promotions per run among candidates that beat every baseline's fitness
    seeds: int = 3  # seeds of the re-runs, the architecture's own training seed first
    above_baselines: bool = True  # eligible only above every baseline's fitness (saves re-runs that cannot win)
    screen: bool = True  # the first seed alone first; the rest only for a candidate that beats every baseline there

    def __post_init__(self) -> None:
        if self.seeds < 2:
            raise ValueError("a paired test over seeds needs at least 2 seeds")


def promotion_seeds(first: int, config: PromotionConfig) -> list[int]:
    return [first + i for i in range(config.seeds)]


def first_stage_seeds(first: int, config: PromotionConfig) -> list[int]:
    """The seeds a promotion is first re-trained on: the first alone when screening, else all."""
    return promotion_seeds(first, config)[: 1 if config.screen else config.seeds]


def stated_test(config: PromotionConfig) -> str:
    """The test as the events state it."""
    return f"{TEST}; {SCREEN}" if config.screen else TEST


def paired_test(differences: list[float]) -> dict[str, Any]:
    """One-sided paired t-test of mean(differences) > 0."""
    n = len(differences)
    mean = sum(differences) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in differences) / (n - 1)) if n > 1 else 0.0
    if sd == 0.0:
        # No spread: the differences are all equal; an improvement exactly when they are positive.
        t, p = (math.inf if mean > 0 else -math.inf if mean < 0 else 0.0), (0.0 if mean > 0 else 1.0)
    else:
        t = mean / (sd / math.sqrt(n))
        p = float(stats.t.sf(t, df=n - 1))
    return {"n": n, "mean_difference": mean, "sd": sd, "t": t if math.isfinite(t) else str(t), "p": p,
            "passed": p < ALPHA}


def screen(per_seed: dict[str, dict[int, dict[str, float]]], candidate: str,
           baselines: list[str]) -> tuple[bool, dict[str, Any], str]:
    """(through the screen?, the differences per baseline and metric, the outcome in words) on the
    candidate's one screening seed: through only if it is better than every baseline on both metrics."""
    (seed,) = per_seed[candidate]
    statistics: dict[str, Any] = {}
    behind: list[str] = []
    for baseline in baselines:
        for metric, sign in METRICS.items():
            difference = sign * (per_seed[candidate][seed][metric] - per_seed[baseline][seed][metric])
            # One difference: paired_test's zero-spread rule, through exactly when it is positive.
            row = statistics[f"{baseline}/{metric}"] = {**paired_test([difference]), "differences": [difference],
                                                        "screen_seed": seed}
            if not row["passed"]:
                behind.append(f"{metric} against {baseline} ({difference:+.4f})")
    if behind:
        return False, statistics, f"not SOTA: screened out on seed {seed}, not better on " + "; ".join(behind)
    return True, statistics, f"through the screen on seed {seed}: better than {', '.join(baselines)} on both metrics"


def standing(candidates: Sequence[Any]) -> list[float]:
    """The fitness of every judged candidate whose promotion was not denied: the bar a later candidate must
    clear once the top k is spent.  A denied candidate's re-runs have shown what its exploration fitness was
    worth; in the sixth discovery run, one screened out 0.125 behind Gated DeltaNet's loss held the bar for the
    rest of the run."""
    return [a.fitness for a in candidates if a.fitness is not None and a.promotion.get("status") != "denied"]


def choose(fitness: float, terms: dict[str, float], best_baseline_fitness: float, earlier: list[float],
           requested: int, config: PromotionConfig) -> str:
    """Why this candidate is promoted, or "" when it is not.

    Eligible (unless ``above_baselines`` is off) only above every baseline's fitness and with neither
    measured term below ``TERM_FLOOR``; then promoted while fewer than ``top_k`` of the run's
    promotions have been requested, or whenever it beats the best candidate so far
    (``earlier``: :func:`standing`).
    """
    if config.above_baselines:
        if fitness <= best_baseline_fitness:
            return ""
        if any(terms[term] < TERM_FLOOR for term in MEASURED_TERMS):
            return ""
    if requested < config.top_k:
        return (f"fitness {fitness:.4f} (best baseline {best_baseline_fitness:.4f}); promotion "
                f"{requested + 1} of the run's top {config.top_k}")
    if earlier and fitness > max(earlier):
        return f"fitness {fitness:.4f} is the best of the run so far (previous best {max(earlier):.4f})"
    return ""


def decide(per_seed: dict[str, dict[int, dict[str, float]]], candidate: str,
           baselines: list[str]) -> tuple[bool, dict[str, Any], str]:
    """(SOTA?, statistics per baseline and metric, the decision in words).

    ``per_seed[arch][seed]`` holds that run's ``val_loss`` and ``benchmark_mean``.
    """
    seeds = sorted(per_seed[candidate])
    statistics: dict[str, Any] = {}
    failed: list[str] = []
    for baseline in baselines:
        for metric, sign in METRICS.items():
            differences = [sign * (per_seed[candidate][s][metric] - per_seed[baseline][s][metric]) for s in seeds]
            result = {**paired_test(differences), "differences": differences}
            statistics[f"{baseline}/{metric}"] = result
            if not result["passed"]:
                failed.append(f"{metric} against {baseline} (mean difference {result['mean_difference']:+.4f}, "
                              f"p {result['p']:.3f})")
    if failed:
        return False, statistics, "not SOTA: no improvement beyond seed noise on " + "; ".join(failed)
    return True, statistics, (f"SOTA: beats {', '.join(baselines)} on validation loss and benchmark mean over "
                              f"seeds {seeds}, every p < {ALPHA}")
