"""Prometheus metrics shared by every service; each process serves its own /metrics.

Two kinds. Counters and histograms of what this process did (events, trainings, LLM requests):
they start at zero with the process, so dashboards read them through `rate`/`increase`. And the
discovery gauges, which the analyst recomputes from its fold of the whole log each time it has
caught up (`record_discovery`): a restart rebuilds the same values, so they are read as they are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram, start_http_server

if TYPE_CHECKING:
    from services.runtime.llm import Exchange
    from services.runtime.projection import Projection

EVENTS_PUBLISHED = Counter("asi_events_published_total", "Events appended to the log", ["service", "type"])
EVENTS_CONSUMED = Counter("asi_events_consumed_total", "Events read from the log", ["service", "type"])
EVENTS_REJECTED = Counter("asi_events_rejected_total", "Malformed messages seen on event subjects", ["service"])
QUEUE_DEPTH = Gauge("asi_training_queue_depth", "Training jobs waiting in the work queue")
TRAINING_SECONDS = Histogram(
    "asi_training_seconds", "Wall time of one training job", buckets=(1, 5, 15, 30, 60, 120, 300, 900, 3600)
)
EXPERIMENTS = Counter("asi_experiments_total", "Finished experiments by outcome", ["outcome"])

LLM_TOKENS = Counter("asi_llm_tokens_total", "Tokens of answered LLM requests, by kind (prompt, completion)",
                     ["model", "kind"])
LLM_REQUEST_SECONDS = Histogram("asi_llm_request_seconds", "Wall time of one answered LLM request", ["model"],
                                buckets=(0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320))

# From the log, per run (the analyst's fold).
BEST_FITNESS = Gauge("asi_best_fitness", "Best judged fitness so far (candidates and baselines)", ["run_id"])
SOTA_ARCHITECTURES = Gauge("asi_sota_architectures", "Architectures promoted to SOTA so far", ["run_id"])
COMPUTE_SECONDS = Gauge("asi_compute_seconds",
                        "Training seconds spent so far: candidates, baselines and re-runs", ["run_id"])
PROPOSALS = Gauge("asi_proposals", "Architectures proposed so far, by mind and origin", ["run_id", "mind", "origin"])
REJECTIONS = Gauge("asi_rejections", "Proposals rejected before training, by gate", ["run_id", "gate"])


def observe_llm_exchange(model: str, exchange: Exchange) -> None:
    """Count one answered LLM request: its tokens and its wall time."""
    LLM_TOKENS.labels(model, "prompt").inc(exchange.prompt_tokens)
    LLM_TOKENS.labels(model, "completion").inc(exchange.completion_tokens)
    LLM_REQUEST_SECONDS.labels(model).observe(exchange.seconds)


def record_discovery(projection: Projection) -> None:
    """Set the discovery gauges of every run in `projection` from the fold alone."""
    # The analytics hold the one definition of SOTA and compute; imported here so that a
    # process that never records discovery does not load them.
    from services.analyst.analytics import discovery_curve

    for run_id in projection.runs:
        archs = projection.of_run(run_id)
        judged = [a.fitness for a in archs if a.fitness is not None]
        if judged:
            BEST_FITNESS.labels(run_id).set(max(judged))
        curve = discovery_curve(projection, run_id)
        SOTA_ARCHITECTURES.labels(run_id).set(curve["sota"])
        COMPUTE_SECONDS.labels(run_id).set(curve["training_seconds"])
        proposals: dict[tuple[str, str], int] = {}
        rejections: dict[str, int] = {}
        for arch in archs:
            key = (arch.mind, arch.origin)
            proposals[key] = proposals.get(key, 0) + 1
            if arch.status == "rejected":
                rejections[arch.failure["kind"]] = rejections.get(arch.failure["kind"], 0) + 1
        for (mind, origin), count in proposals.items():
            PROPOSALS.labels(run_id, mind, origin).set(count)
        for gate, count in rejections.items():
            REJECTIONS.labels(run_id, gate).set(count)


def serve_metrics(port: int) -> None:
    """Start the /metrics endpoint on `port` (0 disables it)."""
    if port:
        start_http_server(port, addr="0.0.0.0")
