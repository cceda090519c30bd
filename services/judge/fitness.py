"""Fitness from measurements against the run's baselines, all trained in the same harness.

Three terms, each in (0, 1) with 0.5 meaning "as good as the baseline", averaged as in the
paper: validation loss, capability-benchmark mean, and a quality term (the LLM rubric when
one is configured, else measured: throughput as counted compute per token, parameter parity,
the complexity probe's cost exponent and novelty). Every input is counted, not timed, so a
replayed, resumed or re-run experiment is judged the same on any machine. Each term is computed
against every baseline and the lowest score is kept, so a candidate is always measured against
the stronger baseline on that term. Each delta passes through a sigmoid that saturates about 10%
away from the baseline, so one lucky term cannot dominate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

SATURATION = 0.10  # a 10% relative change already scores ~0.98 (or ~0.02)
LINEAR_EXPONENT = 1.2  # the complexity probe's exponent up to which a mixer counts as linear (noise above 1.0)
QUADRATIC_EXPONENT = 1.5  # the probe's rejection threshold: the complexity factor reaches 0 there
# Code distance (1 - the novelty gate's chunked MiniLM cosine similarity to the nearest earlier
# proposal) at which a design counts as fully new. Measured on the gate's chunks: a one-token change
# scores 0.998 (distance 0.002), different designs down to 0.31; one changed component of a rendered
# design is usually 0.9-0.99. Closer than this, the factor falls linearly to NEAR_COPY_FACTOR.
NOVEL_CODE_DISTANCE = 0.1
NEAR_COPY_FACTOR = 0.75
REPEAT_FACTOR = 0.5  # the same function or the same components as an earlier design


def squash(delta: float, span: float = SATURATION) -> float:
    """Map a signed improvement to (0, 1); 0 -> 0.5, +span -> ~0.98."""
    return 1.0 / (1.0 + math.exp(-4.0 * delta / span))


@dataclass(frozen=True)
class Judgement:
    fitness: float
    terms: dict[str, float]
    rationale: str
    detail: dict[str, Any] = field(default_factory=dict)  # every term's inputs per baseline


@dataclass(frozen=True)
class Context:
    """What the measured quality term needs beyond the two results."""

    complexity_exponent: float | None = None  # the candidate's, from its pre-flight probe
    novelty_axes: int | None = None  # genome axes that differ from the nearest earlier design; None: not a genome
    same_function_as: str = ""  # an earlier architecture with the same functional fingerprint
    code_distance: float | None = None  # 1 - MiniLM similarity to the nearest earlier code; None: nothing earlier


def complexity_factor(exponent: float | None) -> float:
    """1 for a linear mixer, falling to 0 at the probe's quadratic threshold; 1 when not measured."""
    if exponent is None:
        return 1.0
    return min(1.0, max(0.0, (QUADRATIC_EXPONENT - exponent) / (QUADRATIC_EXPONENT - LINEAR_EXPONENT)))


def novelty_factor(context: Context) -> float:
    """A design that computes an earlier one's function, or repeats its components, counts half; one
    whose code embeds close to an earlier one's counts between NEAR_COPY_FACTOR and 1, by distance."""
    if context.same_function_as or context.novelty_axes == 0:
        return REPEAT_FACTOR
    if context.code_distance is None:
        return 1.0
    closeness = max(0.0, 1.0 - context.code_distance / NOVEL_CODE_DISTANCE)
    return 1.0 - (1.0 - NEAR_COPY_FACTOR) * closeness


def measured_quality(result: dict[str, Any], baseline: dict[str, Any], context: Context) -> tuple[float, dict]:
    """Throughput against the baseline, discounted by parameter drift, super-linear cost and repetition.

    Throughput is the baseline's counted FLOPs per token over the candidate's: the tokens per second
    both would reach at equal hardware efficiency. The measured tokens/s is recorded beside it but
    does not score: it moves with whatever else the machine runs."""
    speed_ratio = baseline["flops_per_token"] / max(result["flops_per_token"], 1e-9)
    measured_ratio = result["tokens_per_s"] / max(baseline["tokens_per_s"], 1e-9)
    drift = result["params"] / max(baseline["params"], 1) - 1.0
    parity = max(0.0, 1.0 - abs(drift))
    speed = squash(math.log(max(speed_ratio, 1e-9)), span=1.0)
    complexity, novelty = complexity_factor(context.complexity_exponent), novelty_factor(context)
    score = speed * parity * complexity * novelty
    return score, {"speed_ratio": speed_ratio, "measured_speed_ratio": measured_ratio, "speed_score": speed,
                   "param_drift": drift, "parity": parity,
                   "complexity_exponent": context.complexity_exponent, "complexity_factor": complexity,
                   "novelty_axes": context.novelty_axes, "same_function_as": context.same_function_as,
                   "code_distance": context.code_distance,
                   "novelty_factor": novelty, "score": score}


def judge(result: dict[str, Any], baselines: dict[str, dict[str, Any]], quality: tuple[float, str] | None = None,
          context: Context = Context()) -> Judgement:
    """``result`` and each baseline's result carry val_loss, benchmark_mean, flops_per_token,
    tokens_per_s and params;
    ``baselines`` maps a baseline's id to its result. ``quality``, when given, is an LLM rubric's
    score and note, which replaces the measured quality term."""
    if not baselines:
        raise ValueError("fitness needs at least one trained baseline")
    per_baseline: dict[str, dict[str, Any]] = {}
    for name, base in baselines.items():
        loss_gain = (base["val_loss"] - result["val_loss"]) / base["val_loss"]
        bench_gain = result["benchmark_mean"] - base["benchmark_mean"]
        entry: dict[str, Any] = {
            "loss": {"baseline_val_loss": base["val_loss"], "val_loss": result["val_loss"],
                     "relative_gain": loss_gain, "score": squash(loss_gain)},
            "benchmark": {"baseline_benchmark_mean": base["benchmark_mean"],
                          "benchmark_mean": result["benchmark_mean"], "gain": bench_gain,
                          "score": squash(bench_gain)},
        }
        if quality is None:
            entry["quality"] = dict(zip(("score", "inputs"), measured_quality(result, base, context), strict=True))
        per_baseline[name] = entry
    terms: dict[str, float] = {}
    decided_by: dict[str, str] = {}
    for term in ("loss", "benchmark", "quality"):
        if term == "quality" and quality is not None:
            terms[term], decided_by[term] = quality[0], "rubric"
            continue
        # The stronger baseline on this term is the one the candidate scores lowest against.
        name = min(per_baseline, key=lambda n, t=term: (per_baseline[n][t]["score"], n))
        terms[term], decided_by[term] = per_baseline[name][term]["score"], name
    fitness = sum(terms.values()) / len(terms)
    loss_ref = per_baseline[decided_by["loss"]]["loss"]
    bench_ref = per_baseline[decided_by["benchmark"]]["benchmark"]
    if quality is not None:
        quality_note = quality[1]
    else:
        q = per_baseline[decided_by["quality"]]["quality"]["inputs"]
        quality_note = (f"throughput {q['speed_ratio']:.2f}x {decided_by['quality']} by counted FLOPs "
                        f"({q['measured_speed_ratio']:.2f}x measured), parameters "
                        f"{q['param_drift']:+.1%} off it, complexity factor {q['complexity_factor']:.2f}, "
                        f"novelty factor {q['novelty_factor']:.2f}")
    rationale = (f"validation loss {result['val_loss']:.4f} vs {loss_ref['baseline_val_loss']:.4f} of "
                 f"{decided_by['loss']} ({loss_ref['relative_gain']:+.2%}); benchmark mean "
                 f"{result['benchmark_mean']:.3f} vs {bench_ref['baseline_benchmark_mean']:.3f} of "
                 f"{decided_by['benchmark']} ({bench_ref['gain']:+.3f}); {quality_note}")
    detail = {"terms": terms, "decided_by": decided_by, "per_baseline": per_baseline,
              "quality_source": "rubric" if quality is not None else "measured"}
    return Judgement(fitness, terms, rationale, detail)
