"""Prometheus metrics shared by every service; each process serves its own /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

EVENTS_PUBLISHED = Counter("asi_events_published_total", "Events appended to the log", ["service", "type"])
EVENTS_CONSUMED = Counter("asi_events_consumed_total", "Events read from the log", ["service", "type"])
EVENTS_REJECTED = Counter("asi_events_rejected_total", "Malformed messages seen on event subjects", ["service"])
QUEUE_DEPTH = Gauge("asi_training_queue_depth", "Training jobs waiting in the work queue")
TRAINING_SECONDS = Histogram(
    "asi_training_seconds", "Wall time of one training job", buckets=(1, 5, 15, 30, 60, 120, 300, 900, 3600)
)
EXPERIMENTS = Counter("asi_experiments_total", "Finished experiments by outcome", ["outcome"])


def serve_metrics(port: int) -> None:
    """Start the /metrics endpoint on `port` (0 disables it)."""
    if port:
        start_http_server(port, addr="0.0.0.0")
