"""The chart rendered by a real `helm`, offline.

`helm lint` and `helm template` refuse a chart whose Chart.yaml names dependencies that are
not in charts/, even when their condition is off, and `helm dependency update` cannot reach
a chart repository here. So the chart is rendered from a copy whose Chart.yaml lists no
dependencies: the subcharts are off (their conditions default to false, which a test
checks), everything else is the chart as committed.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "k8s" / "asi-arch"
VALUE_SETS = Path(__file__).resolve().parent
EVERYTHING_ON = VALUE_SETS / "everything-on.yaml"
GPU_CLUSTER = REPO / "deploy" / "k8s" / "values-gpu-cluster.yaml"  # the README's example
EXTERNAL_SERVERS = VALUE_SETS / "external-servers.yaml"
SERVICES = ("cognition", "researcher", "engineer", "judge", "analyst")
RELEASE = "lab"
WORKLOAD_KINDS = ("Deployment", "StatefulSet")
NAMESPACE = "asi"


def find_helm() -> str:
    local = REPO / ".venv" / "bin" / "helm"
    if local.exists():
        return str(local)
    on_path = shutil.which("helm")
    if on_path:
        return on_path
    pytest.fail("helm is not installed: neither .venv/bin/helm nor helm on PATH. "
                "Install it with `deploy/k8s/install-helm.sh .venv/bin` (`make test` does).", pytrace=False)


@pytest.fixture(scope="session")
def helm() -> str:
    return find_helm()


@pytest.fixture(scope="session")
def offline_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("chart") / CHART.name
    shutil.copytree(CHART, copy)
    meta = yaml.safe_load((copy / "Chart.yaml").read_text())
    meta.pop("dependencies")
    (copy / "Chart.yaml").write_text(yaml.safe_dump(meta))
    return copy


@dataclass
class Rendered:
    """The objects of one `helm template`, with lookups the tests share."""

    objects: list[dict[str, Any]]
    values: dict[str, Any]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        found = [o for o in self.of_kind(kind) if o["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
        return found[0]

    def workload(self, component: str) -> dict[str, Any]:
        """The component's Deployment, or its StatefulSet (engineers with a claim per replica)."""
        name = f"{RELEASE}-asi-arch-{component}"
        found = [o for o in self.objects if o["kind"] in WORKLOAD_KINDS and o["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one workload {name}, found {len(found)}"
        return found[0]

    def pods(self) -> list[dict[str, Any]]:
        """Every object that makes pods: workloads and Jobs."""
        return [o for o in self.objects if o["kind"] in (*WORKLOAD_KINDS, "Job")]

    def container(self, component: str) -> dict[str, Any]:
        (container,) = self.workload(component)["spec"]["template"]["spec"]["containers"]
        return container

    def env(self, component: str) -> dict[str, Any]:
        """name -> value (or the valueFrom mapping) of the component's container."""
        return {e["name"]: e.get("value", e.get("valueFrom")) for e in self.container(component)["env"]}


Render = Callable[..., Rendered]


def template(helm: str, chart: Path, *values: str) -> subprocess.CompletedProcess[str]:
    """`helm template` of ``chart`` with ``--set`` values, as it finished: for the renders a chart refuses."""
    argv = [helm, "template", RELEASE, str(chart)]
    for item in values:
        argv += ["--set", item]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def pod_volumes(maker: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """name -> volume of the pods an object makes; a StatefulSet's claim templates as
    {"claimTemplate": spec}."""
    volumes = {v["name"]: v for v in maker["spec"]["template"]["spec"].get("volumes", [])}
    for template in maker["spec"].get("volumeClaimTemplates", []):
        volumes[template["metadata"]["name"]] = {"claimTemplate": template["spec"]}
    return volumes


@pytest.fixture(scope="session")
def render(helm: str, offline_chart: Path) -> Render:
    def run(*values_files: Path, set_values: tuple[str, ...] = ()) -> Rendered:
        argv = [helm, "template", RELEASE, str(offline_chart), "--namespace", NAMESPACE]
        for path in values_files:
            argv += ["--values", str(path)]
        for item in set_values:
            argv += ["--set", item]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"helm template failed:\n{done.stderr}"
        objects = [o for o in yaml.safe_load_all(done.stdout) if o]
        values = yaml.safe_load((CHART / "values.yaml").read_text())
        for path in values_files:
            values = _merge(values, yaml.safe_load(path.read_text()))
        return Rendered(objects, values)

    return run


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) \
            else value
    return merged


@pytest.fixture(scope="session")
def default_render(render: Render) -> Rendered:
    return render()


@pytest.fixture(scope="session")
def everything_render(render: Render) -> Rendered:
    return render(EVERYTHING_ON)


@pytest.fixture(scope="session")
def gpu_cluster_render(render: Render) -> Rendered:
    return render(GPU_CLUSTER)


@pytest.fixture(scope="session")
def external_render(render: Render) -> Rendered:
    return render(EXTERNAL_SERVERS)


@pytest.fixture(params=["default", "everything-on", "gpu-cluster", "external-servers"], scope="session")
def rendered(request: pytest.FixtureRequest, default_render: Rendered, everything_render: Rendered,
             gpu_cluster_render: Rendered, external_render: Rendered) -> Rendered:
    return {"default": default_render, "everything-on": everything_render, "gpu-cluster": gpu_cluster_render,
            "external-servers": external_render}[request.param]
