"""The release starts its run: a Helm hook Job calls `asi-arch start` with the values' run, and
calling it again (a retry, an upgrade) never starts a second run beside the first. The Job's
own arguments are run against a real nats-server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from services.pb import events_pb2
from services.runtime.eventstore import EventStore
from services.runtime.natsserver import EmbeddedNats
from services.runtime.projection import Projection
from tests.deploy.conftest import RELEASE, Render, Rendered, template

RUN_JOB = f"{RELEASE}-asi-arch-run"


def start_container(rendered: Rendered) -> dict[str, Any]:
    (container,) = rendered.get("Job", RUN_JOB)["spec"]["template"]["spec"]["containers"]
    return container


def flags(container: dict[str, Any]) -> dict[str, str]:
    return dict(arg.removeprefix("--").split("=", 1) for arg in container["args"] if "=" in arg)


def test_the_job_starts_the_values_run(rendered: Rendered):
    run = rendered.values["run"]
    if not run["enabled"]:
        assert not rendered.of_kind("Job")
        return
    container = start_container(rendered)
    assert container["command"] == ["asi-arch"] and container["args"][0] == "start"
    given = flags(container)
    assert given["nats"] == rendered.env("engineer")["ASI_NATS_URL"], "the Job writes to the services' NATS"
    assert (given["profile"], int(given["experiments"]), given["mind"], int(given["seed"])) == \
        (run["profile"], run["experiments"], run["mind"], run["seed"])
    assert given["parent-strategy"] == run["parentStrategy"]
    engineer = rendered.values["engineer"]
    pool = engineer["autoscaling"]["maxReplicas"] if engineer["autoscaling"]["enabled"] else engineer["replicas"]
    assert int(given["engineers"]) == pool, "jobs in flight: one per engineer the pool can have"
    assert "--new-run" not in container["args"], "a rerun must not start a second run"


def test_the_job_is_a_hook_after_install_and_after_upgrade_only_when_asked(default_render: Rendered,
                                                                           everything_render: Rendered):
    hooks = {r.values["run"]["startOnUpgrade"]: r.get("Job", RUN_JOB)["metadata"]["annotations"]
             for r in (default_render, everything_render)}
    assert hooks[False]["helm.sh/hook"] == "post-install"
    assert hooks[True]["helm.sh/hook"] == "post-install,post-upgrade"
    for hook in hooks.values():
        assert hook["helm.sh/hook-delete-policy"] == "before-hook-creation"
    job = default_render.get("Job", RUN_JOB)["spec"]
    assert job["template"]["spec"]["restartPolicy"] == "Never" and job["backoffLimit"] > 0
    assert job["ttlSecondsAfterFinished"] == default_render.values["run"]["ttlSecondsAfterFinished"], \
        "uninstall leaves hook Jobs behind: they expire instead"


def start_from_the_job(container: dict[str, Any], nats_url: str) -> dict[str, str]:
    """Run the Job's command line here, its NATS replaced by the test's."""
    argv = [a if not a.startswith("--nats=") else f"--nats={nats_url}" for a in container["args"]]
    done = subprocess.run([sys.executable, "-m", "services.cli", *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


async def runs_in_the_log(url: str) -> Projection:
    store = await EventStore.open(url, "test")
    try:
        projection = Projection()
        for record in await store.read_all():
            if record.env is not None:
                projection.apply(record.env, record.event)  # type: ignore[arg-type]
        return projection
    finally:
        await store.close()


async def test_the_jobs_command_starts_one_run_however_often_it_runs(everything_render: Rendered,
                                                                     nats_server: EmbeddedNats):
    container = start_container(everything_render)
    first = start_from_the_job(container, nats_server.url)
    again = start_from_the_job(container, nats_server.url)  # a retried Job, or the hook after an upgrade
    assert first["started"] == "true"
    assert again == {"run_id": first["run_id"], "started": "false"}

    projection = await runs_in_the_log(nats_server.url)
    assert list(projection.runs) == [first["run_id"]]
    run, values = projection.runs[first["run_id"]], everything_render.values["run"]
    assert (run.profile, run.experiments, run.seed) == (values["profile"], values["experiments"], values["seed"])
    assert run.mind.startswith(values["mind"])
    assert run.parent_strategy == values["parentStrategy"]


async def test_after_the_run_finished_the_upgrade_hook_starts_the_next(everything_render: Rendered,
                                                                       nats_server: EmbeddedNats):
    container = start_container(everything_render)
    first = start_from_the_job(container, nats_server.url)
    store = await EventStore.open(nats_server.url, "test")
    try:
        await store.append(events_pb2.RunFinished(reason="budget"), run_id=first["run_id"],
                           aggregate_id=first["run_id"])
    finally:
        await store.close()
    following = start_from_the_job(container, nats_server.url)
    assert following["started"] == "true" and following["run_id"] != first["run_id"]


@pytest.mark.parametrize(("values", "refusal"), [
    (("runId=run-0123456789ab",), "runId pins every service to another one"),
    (("run.mind=llm",), "run.mind=llm needs an LLM"),
])
def test_impossible_runs_are_refused(helm: str, offline_chart: Path, values: tuple[str, ...], refusal: str):
    done = template(helm, offline_chart, *values)
    assert done.returncode != 0
    assert refusal in done.stderr


def test_an_llm_run_renders_with_an_llm(render: Render):
    with_llm = render(set_values=("run.mind=llm", "llm.url=http://vllm.llm.svc:8000/v1"))
    assert flags(start_container(with_llm))["mind"] == "llm"
