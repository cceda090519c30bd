"""The chart's README covers what a platform engineer needs, and what it says exists does."""

from __future__ import annotations

import re
import shlex

import yaml

from services.cli import build_parser
from tests.deploy.conftest import CHART, REPO

README = REPO / "deploy" / "k8s" / "README.md"
SECTIONS = ("Prerequisites", "Install", "Starting and following a run", "Values", "A small GPU cluster",
            "Using servers you already run", "Scaling the engineers", "Watching in Grafana", "Tests")


def text() -> str:
    return README.read_text()


def test_the_readme_has_every_section():
    headings = re.findall(r"^## (.+)$", text(), re.M)
    assert list(SECTIONS) == headings


def test_the_prerequisites_are_named():
    prerequisites = text().split("## Prerequisites", 1)[1].split("\n## ", 1)[0]
    for needed in ("1.27", "NVIDIA device plugin", "NetworkPolicy", "Storage classes", "ReadWriteMany", "KEDA"):
        assert needed in prerequisites, needed


def test_every_top_level_value_is_documented():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    missing = [key for key in values if f"`{key}" not in text()]
    assert not missing, f"values the README does not mention: {missing}"


def test_the_files_it_names_exist():
    for path in re.findall(r"`((?:deploy/k8s/|tests/deploy/)?[\w./-]+\.(?:yaml|sh|py))`", text()):
        candidates = [REPO / path, REPO / "deploy" / "k8s" / path, REPO / "tests" / "deploy" / path]
        assert any(c.exists() for c in candidates), path


def test_its_asi_arch_commands_parse():
    """Every `asi-arch ...` line in a code block is a command line the CLI accepts."""
    parser = build_parser()
    commands = [line.split("#", 1)[0].strip() for block in re.findall(r"```sh\n(.*?)```", text(), re.S)
                for line in block.splitlines() if line.strip().startswith("asi-arch ")]
    assert any("events export --nats" in c for c in commands) and any("report --nats" in c for c in commands)
    for command in commands:
        parser.parse_args(shlex.split(command)[1:])


def test_its_docker_builds_name_the_dockerfiles_variants():
    """`docker build` lines build the Dockerfile's default (CPU) variant or name one it has."""
    dockerfile = (REPO / "deploy" / "k8s" / "Dockerfile").read_text()
    variants = set(re.findall(r"^FROM \S+ AS (\w+)-base$", dockerfile, re.M))
    assert variants == {"cpu", "gpu"}
    builds = [line for line in text().splitlines() if line.startswith("docker build")]
    assert len(builds) == 2
    built = {(re.findall(r"--build-arg VARIANT=(\w+)", line) or ["cpu"])[0] for line in builds}
    assert built == variants, "the README builds both images"
