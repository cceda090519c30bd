"""Prometheus finds every service's /metrics; the Grafana dashboard shows the metrics the
services define, and only those."""

from __future__ import annotations

import json
import re

from tests.deploy.conftest import RELEASE, REPO, SERVICES, Rendered

METRICS_SOURCE = REPO / "services" / "runtime" / "metrics.py"
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")


def defined_metrics() -> dict[str, str]:
    """name -> type, read from the services' own metrics module."""
    found = re.findall(r'\b(Counter|Gauge|Histogram|Summary)\(\s*"(asi_\w+)"', METRICS_SOURCE.read_text())
    assert found, f"no metric definitions found in {METRICS_SOURCE}"
    return {name: kind for kind, name in found}


def queried_metrics(expr: str, defined: dict[str, str]) -> set[str]:
    """The metric families an expression reads (histogram series folded into their family)."""
    names = set()
    for name in re.findall(r"\basi_\w+", expr):
        for suffix in HISTOGRAM_SERIES:
            family = name.removesuffix(suffix)
            if family != name and defined.get(family) == "Histogram":
                name = family
                break
        names.add(name)
    return names


def dashboard(rendered: Rendered) -> tuple[dict, dict]:
    (config_map,) = [c for c in rendered.of_kind("ConfigMap") if c["metadata"]["name"].endswith("-dashboard")]
    return config_map, json.loads(config_map["data"]["asi-arch.json"])


def query_panels(board: dict) -> list[dict]:
    """The panels that query (rows only group them)."""
    return [p for p in board["panels"] if p["type"] != "row"]


def expressions(board: dict) -> list[tuple[str, str]]:
    return [(panel["title"], target["expr"]) for panel in query_panels(board) for target in panel["targets"]]


def test_the_service_monitor_selects_every_service(everything_render: Rendered):
    monitor = everything_render.get("ServiceMonitor", f"{RELEASE}-asi-arch")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prom-stack"
    selector = monitor["spec"]["selector"]["matchLabels"]
    selected = [s for s in everything_render.of_kind("Service") if selector.items() <= s["metadata"]["labels"].items()]
    assert {s["metadata"]["name"] for s in selected} == {f"{RELEASE}-asi-arch-{c}" for c in SERVICES}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    for service in selected:
        assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    # the metrics carry their own `service` label; without this Prometheus renames it
    assert endpoint["honorLabels"] is True


def test_the_release_label_is_configurable(render):
    custom = render(set_values=("metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.release=monitoring"))
    monitor = custom.get("ServiceMonitor", f"{RELEASE}-asi-arch")
    assert monitor["metadata"]["labels"]["release"] == "monitoring"


def test_the_dashboard_config_map_is_labelled_for_grafana(rendered: Rendered):
    config_map, board = dashboard(rendered)
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert board["title"] == "ASI-Arch" and board["uid"]
    assert board["panels"]


def test_the_dashboard_queries_only_metrics_the_services_define(default_render: Rendered):
    defined = defined_metrics()
    _, board = dashboard(default_render)
    shown: set[str] = set()
    for panel in query_panels(board):
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            used = queried_metrics(target["expr"], defined)
            assert used, f"{panel['title']}: {target['expr']} reads no asi_ metric"
            unknown = used - defined.keys()
            assert not unknown, f"{panel['title']} queries undefined metrics {unknown}"
            shown |= used
    for variable in board["templating"]["list"]:
        query = variable.get("definition", "")
        assert queried_metrics(query, defined) <= defined.keys(), variable["name"]
    assert shown == defined.keys(), f"metrics not on the dashboard: {defined.keys() - shown}"


def test_the_dashboard_groups_by_the_labels_the_metrics_have(default_render: Rendered):
    source = METRICS_SOURCE.read_text()
    labels = {name: set(re.findall(r'"(\w+)"', names)) for name, names in
              re.findall(r'"(asi_\w+)",\s*"[^"]*",\s*\[([^\]]*)\]', source)}
    defined = defined_metrics()
    _, board = dashboard(default_render)
    # labels every scraped series gets from the ServiceMonitor, plus the histogram's `le`
    target_labels = {"namespace", "pod", "instance", "job", "container", "endpoint", "le"}
    for panel in query_panels(board):
        for target in panel["targets"]:
            for grouping in re.findall(r"\bby \(([^)]*)\)", target["expr"]):
                for metric in queried_metrics(target["expr"], defined):
                    unknown = {g.strip() for g in grouping.split(",")} - labels.get(metric, set()) - target_labels
                    assert not unknown, f"{panel['title']}: {metric} has no label {unknown}"


# What the issue asks the dashboard to show of discovery, as the metric that carries each.
DISCOVERY_METRICS = {
    "best fitness so far": "asi_best_fitness",
    "SOTA count": "asi_sota_architectures",
    "cumulative training seconds": "asi_compute_seconds",
    "LLM prompt/completion tokens": "asi_llm_tokens_total",
    "LLM request latency": "asi_llm_request_seconds",
    "proposals by mind and origin": "asi_proposals",
    "rejections by gate": "asi_rejections",
}


def test_every_discovery_metric_is_defined_and_on_a_panel_of_its_own(default_render: Rendered):
    defined = defined_metrics()
    _, board = dashboard(default_render)
    for what, metric in DISCOVERY_METRICS.items():
        assert metric in defined, f"{what}: {metric} is not defined in {METRICS_SOURCE.name}"
        panels = [title for title, expr in expressions(board) if metric in queried_metrics(expr, defined)]
        assert panels, f"{what}: no panel queries {metric}"


def test_sota_is_plotted_against_compute(default_render: Rendered):
    defined = defined_metrics()
    _, board = dashboard(default_render)
    (scaling,) = [p for p in query_panels(board) if p["type"] == "xychart"]
    read = [queried_metrics(t["expr"], defined) for t in scaling["targets"]]
    assert read == [{"asi_compute_seconds"}, {"asi_sota_architectures"}], "x: compute, y: SOTA"
    (series,) = scaling["options"]["series"]
    legends = {t["legendFormat"] for t in scaling["targets"]}
    assert {series["x"]["matcher"]["options"], series["y"]["matcher"]["options"]} == legends


def test_counters_are_read_through_rate_or_increase(default_render: Rendered):
    """A process's counters restart at zero with it: a raw counter on a panel drops at every restart."""
    defined = defined_metrics()
    counting = {name for name, kind in defined.items() if kind in ("Counter", "Histogram")}
    _, board = dashboard(default_render)
    for title, expr in expressions(board):
        outside = re.sub(r"\b(rate|increase)\([^()\[]*(\{[^}]*\})?\[[^\]]+\]\)", "", expr)
        raw = queried_metrics(outside, defined) & counting
        assert not raw, f"{title}: {raw} read without rate/increase in {expr}"
