"""Fitness from measurements against a baseline trained in the same harness.

Three terms, each in (0, 1) with 0.5 meaning "as good as the baseline", averaged:
validation loss, capability-benchmark mean, and a quality term (measured efficiency
and parameter parity when no LLM rubric is configured). As in the paper, each delta
passes through a sigmoid that saturates about 10% away from the baseline, so one
lucky term cannot dominate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

SATURATION = 0.10  # a 10% relative change already scores ~0.98 (or ~0.02)


def squash(delta: float, span: float = SATURATION) -> float:
    """Map a signed improvement to (0, 1); 0 -> 0.5, +span -> ~0.98."""
    return 1.0 / (1.0 + math.exp(-4.0 * delta / span))


@dataclass(frozen=True)
class Judgement:
    fitness: float
    terms: dict[str, float]
    rationale: str


def measured_quality(result: dict[str, Any], baseline: dict[str, Any]) -> tuple[float, str]:
    """The heuristic rubric: throughput against the baseline, discounted by parameter drift."""
    speed_ratio = result["tokens_per_s"] / max(baseline["tokens_per_s"], 1e-9)
    drift = abs(result["params"] / max(baseline["params"], 1) - 1.0)
    parity = max(0.0, 1.0 - drift)
    score = squash(math.log(max(speed_ratio, 1e-9)), span=1.0) * parity
    return score, f"throughput {speed_ratio:.2f}x the baseline, parameters {drift:+.1%} off it"


def judge(result: dict[str, Any], baseline: dict[str, Any], quality: tuple[float, str] | None = None) -> Judgement:
    """`result` and `baseline` carry val_loss, benchmark_mean, tokens_per_s and params."""
    loss_gain = (baseline["val_loss"] - result["val_loss"]) / baseline["val_loss"]
    bench_gain = result["benchmark_mean"] - baseline["benchmark_mean"]
    quality_score, quality_note = quality if quality is not None else measured_quality(result, baseline)
    terms = {"loss": squash(loss_gain), "benchmark": squash(bench_gain), "quality": quality_score}
    fitness = sum(terms.values()) / len(terms)
    rationale = (f"validation loss {result['val_loss']:.4f} vs baseline {baseline['val_loss']:.4f} "
                 f"({loss_gain:+.2%}); benchmark mean {result['benchmark_mean']:.3f} vs "
                 f"{baseline['benchmark_mean']:.3f} ({bench_gain:+.3f}); {quality_note}")
    return Judgement(fitness, terms, rationale)
