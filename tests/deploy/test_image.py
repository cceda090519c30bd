"""The Dockerfile (which cannot be built here) agrees with the chart and the project."""

from __future__ import annotations

import json
import re

import yaml

from tests.deploy.conftest import CHART, REPO, SERVICES, Rendered

DOCKERFILE = REPO / "deploy" / "k8s" / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    return steps[last_from:]


def test_the_base_is_python_3_11_slim():
    args = {a.split("=", 1)[0]: a.split("=", 1)[1] for op, a in instructions() if op == "ARG" and "=" in a}
    assert args["PYTHON_IMAGE"] == "python:3.11-slim"
    assert all(a.startswith("${PYTHON_IMAGE}") for op, a in instructions() if op == "FROM")


def test_torch_is_pinned_and_installed_before_the_project():
    runs = " ".join(a for op, a in instructions() if op == "RUN")
    pyproject = (REPO / "pyproject.toml").read_text()
    (torch_pin,) = re.findall(r'"(torch==[\d.]+)"', pyproject)
    assert torch_pin in runs
    assert runs.index(torch_pin) < runs.index("proto/generate.py") < runs.index("pip install .")
    assert '".[gpu]"' in runs and "VARIANT" in runs, "the GPU variant adds the gpu extra (triton)"


def test_the_image_runs_as_the_charts_non_root_user(default_render: Rendered):
    users = [a for op, a in final_stage() if op == "USER"]
    assert users, "the final stage must set USER"
    uid, _, gid = users[-1].partition(":")
    pod = default_render.workload("judge")["spec"]["template"]["spec"]["securityContext"]
    assert int(uid) == pod["runAsUser"] != 0
    assert int(gid) == pod["runAsGroup"]


def test_entrypoint_serves_the_service_named_in_the_chart(default_render: Rendered):
    (entrypoint,) = [json.loads(a) for op, a in final_stage() if op == "ENTRYPOINT"]
    assert entrypoint == ["asi-arch", "serve"]
    for component in SERVICES:
        container = default_render.container(component)
        assert "command" not in container, "the image's entrypoint is the one way in"
        assert container["args"] == [component]


def test_image_defaults_match_the_chart():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(a for op, a in final_stage() if op == "ENV")))
    assert env["ASI_DATA_DIR"] == values["dataDir"]["path"]
    assert int(env["ASI_GRPC_PORT"]) == values["ports"]["grpc"]
    assert int(env["ASI_METRICS_PORT"]) == values["ports"]["metrics"]
    assert env["HOME"].startswith("/tmp"), "the root filesystem is read-only: caches live in /tmp"
    exposed = {int(p) for op, a in final_stage() if op == "EXPOSE" for p in a.split()}
    assert exposed == {values["ports"]["grpc"], values["ports"]["metrics"]}
