"""The chart lints strictly, renders, and its objects are valid Kubernetes objects."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from services.cli import SERVICES as CLI_SERVICES
from tests.deploy.conftest import (
    CHART,
    EVERYTHING_ON,
    EXTERNAL_SERVERS,
    GPU_CLUSTER,
    NAMESPACE,
    RELEASE,
    SERVICES,
    Render,
    Rendered,
)

# Native gRPC probes need 1.27 (the chart's kubeVersion); the newest schema the package has.
KUBERNETES_VERSIONS = ("1.27.0", kubernetes_validate.latest_version())
# CRDs: no bundled schema; test_monitoring and test_autoscaling check them
CUSTOM_KINDS = {"ServiceMonitor", "ScaledObject"}


def lint(helm: str, chart: Path, *values: Path) -> subprocess.CompletedProcess[str]:
    argv = [helm, "lint", "--strict", str(chart)]
    for path in values:
        argv += ["--values", str(path)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def test_the_chart_serves_exactly_the_services_the_cli_knows():
    assert set(SERVICES) == set(CLI_SERVICES)
    templates = {p.stem for p in (CHART / "templates").glob("*.yaml")}
    assert set(SERVICES) <= templates, "one template per service"


def test_subcharts_are_the_official_ones_and_off_by_default():
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    dependencies = {d["name"]: d for d in meta["dependencies"]}
    assert set(dependencies) == {"nats", "qdrant"}
    for name, dependency in dependencies.items():
        assert dependency["condition"] == f"{name}.enabled"
        assert values[name]["enabled"] is False, f"{name} must be off so the chart renders offline"
    jetstream = values["nats"]["config"]["jetstream"]
    assert jetstream["enabled"] is True
    assert jetstream["fileStore"]["pvc"]["enabled"] is True


@pytest.mark.parametrize("values", [(), (EVERYTHING_ON,), (GPU_CLUSTER,), (EXTERNAL_SERVERS,)],
                         ids=["default", "everything-on", "gpu-cluster", "external-servers"])
def test_lint_strict_passes(helm: str, offline_chart: Path, values: tuple[Path, ...]):
    done = lint(helm, offline_chart, *values)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[WARNING]" not in done.stdout and "[ERROR]" not in done.stdout, done.stdout


def test_lint_of_the_committed_chart_misses_only_the_subcharts(helm: str):
    """Without `helm dependency update` the one complaint is the subcharts not in charts/."""
    done = lint(helm, CHART)
    complaints = [line for line in done.stdout.splitlines() if line.startswith(("[WARNING]", "[ERROR]"))]
    assert len(complaints) == 1, done.stdout
    assert "missing these dependencies: nats,qdrant" in complaints[0]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_core_objects_validate_against_kubernetes_schemas(rendered: Rendered, version: str):
    kinds = set()
    for obj in rendered.objects:
        if obj["kind"] in CUSTOM_KINDS:
            continue
        kubernetes_validate.validate(obj, version, strict=True)
        kinds.add(obj["kind"])
    assert {"Deployment", "Service", "NetworkPolicy", "ServiceAccount", "ConfigMap"} <= kinds


def test_the_schema_check_rejects_a_misspelt_field(default_render: Rendered):
    """The validation above is strict: an unknown field in a container fails it."""
    broken = copy.deepcopy(default_render.workload("engineer"))
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")  # one "s" short
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[0], strict=True)


def test_everything_on_renders_the_optional_parts(everything_render: Rendered):
    kinds = {o["kind"] for o in everything_render.objects}
    assert "ServiceMonitor" in kinds
    everything_render.workload("llm")
    everything_render.get("Service", f"{RELEASE}-asi-arch-llm")
    claims = {o["metadata"]["name"] for o in everything_render.of_kind("PersistentVolumeClaim")}
    # analyst names an existing claim, so the chart creates none for it
    assert claims == {f"{RELEASE}-asi-arch-cognition", f"{RELEASE}-asi-arch-engineer"}


def test_default_render_has_no_optional_parts(default_render: Rendered):
    kinds = {o["kind"] for o in default_render.objects}
    assert "ServiceMonitor" not in kinds and "PersistentVolumeClaim" not in kinds
    assert not [d for d in default_render.of_kind("Deployment") if d["metadata"]["name"].endswith("-llm")]


def test_engineer_replicas_are_the_throughput_knob(default_render: Rendered, everything_render: Rendered):
    assert "replicas" not in everything_render.workload("engineer")["spec"], "the autoscaler owns the count"
    engineer = everything_render.container("engineer")
    assert engineer["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert engineer["image"].endswith("-gpu"), "a GPU engineer runs the GPU image variant (Triton)"
    plain = default_render.container("engineer")
    assert "nvidia.com/gpu" not in plain["resources"].get("limits", {})
    assert not plain["image"].endswith("-gpu")
    # the other services never get the GPU image
    for component in ("cognition", "researcher", "judge", "analyst"):
        assert not everything_render.container(component)["image"].endswith("-gpu")


def test_subchart_addresses_follow_the_official_charts_names(render: Render):
    with_subcharts = render(set_values=("nats.enabled=true", "qdrant.enabled=true"))
    assert with_subcharts.env("judge")["ASI_NATS_URL"] == f"nats://{RELEASE}-nats.{NAMESPACE}.svc:4222"
    assert with_subcharts.env("cognition")["ASI_QDRANT_URL"] == f"http://{RELEASE}-qdrant.{NAMESPACE}.svc:6333"
    # the official charts drop the suffix when the release name already holds the chart name
    policy = with_subcharts.get("NetworkPolicy", f"{RELEASE}-asi-arch-engineer-egress")
    nats_peer = policy["spec"]["egress"][0]["to"][0]["podSelector"]["matchLabels"]
    assert nats_peer == {"app.kubernetes.io/name": "nats", "app.kubernetes.io/instance": RELEASE}


def test_cognition_in_local_mode_refuses_a_second_replica(helm: str, offline_chart: Path):
    done = subprocess.run([helm, "template", RELEASE, str(offline_chart), "--set", "cognition.replicas=2"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "local mode locks its folder" in done.stderr


@pytest.mark.parametrize("bad", ["engineer.replicas=four", "natsUrl=http://nats:4222", "engineer.gpu.count=0",
                                 "judge.persistence.accessModes={ReadWriteAll}"])
def test_the_values_schema_rejects_bad_values(helm: str, offline_chart: Path, bad: str):
    done = subprocess.run([helm, "template", RELEASE, str(offline_chart), "--set", bad],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0, f"{bad} was accepted"
    assert "schema" in done.stderr, done.stderr
