"""Engineers scale with the work queue: a KEDA ScaledObject, off by default, on the JetStream
consumer the workers share, read from NATS's monitoring endpoint (there at zero engineers).

The object is validated against KEDA's own CRD in tests/deploy/test_crds.py; here, what it must
say: the fields it requires, and trigger metadata as a map of strings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.runtime.eventstore import JOBS_STREAM
from services.runtime.jobs import CONSUMER
from tests.deploy.conftest import GPU_CLUSTER, NAMESPACE, RELEASE, Render, Rendered, template

SCALED_OBJECT = f"{RELEASE}-asi-arch-engineer"
SCALED_OBJECT_SPEC_FIELDS = {"scaleTargetRef", "minReplicaCount", "maxReplicaCount", "pollingInterval",
                             "cooldownPeriod", "triggers", "idleReplicaCount", "fallback", "advanced"}


def scaled_object(rendered: Rendered) -> dict[str, Any]:
    return rendered.get("ScaledObject", SCALED_OBJECT)


def test_no_autoscaler_by_default(default_render: Rendered, gpu_cluster_render: Rendered):
    for rendered in (default_render, gpu_cluster_render):
        assert not rendered.of_kind("ScaledObject")
        assert rendered.workload("engineer")["spec"]["replicas"] == rendered.values["engineer"]["replicas"]


def test_the_scaled_object_has_the_crds_shape(everything_render: Rendered):
    scaler = scaled_object(everything_render)
    assert scaler["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaler["spec"]
    assert set(spec) <= SCALED_OBJECT_SPEC_FIELDS
    assert spec["scaleTargetRef"]["name"], "the CRD requires scaleTargetRef.name"
    for trigger in spec["triggers"]:
        assert isinstance(trigger["type"], str) and trigger["type"]
        assert all(isinstance(v, str) for v in trigger["metadata"].values()), "trigger metadata is map[string]string"
    for field in ("minReplicaCount", "maxReplicaCount", "pollingInterval", "cooldownPeriod"):
        assert isinstance(spec[field], int), field


def test_it_scales_the_engineers_on_their_consumers_pending_jobs(everything_render: Rendered):
    spec = scaled_object(everything_render)["spec"]
    values = everything_render.values["engineer"]["autoscaling"]
    engineer = everything_render.workload("engineer")
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": engineer["kind"],
                                      "name": engineer["metadata"]["name"]}
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (values["minReplicas"], values["maxReplicas"])
    assert "replicas" not in engineer["spec"], "a replica count in the chart would fight the autoscaler"
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "nats-jetstream"
    metadata = trigger["metadata"]
    assert (metadata["stream"], metadata["consumer"]) == (JOBS_STREAM, CONSUMER), "the queue the workers pull"
    assert metadata["lagThreshold"] == str(values["pendingJobsPerEngineer"])
    nats_host = everything_render.values["natsUrl"].split("://")[1].split(":")[0]
    assert metadata["natsServerMonitoringEndpoint"] == f"{nats_host}:8222"


def test_engineers_with_a_claim_each_scale_as_a_stateful_set(render: Render):
    scaled = render(GPU_CLUSTER, set_values=("engineer.autoscaling.enabled=true",))
    assert scaled_object(scaled)["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"
    assert "replicas" not in scaled.workload("engineer")["spec"]


def test_the_monitoring_endpoint_follows_the_nats_subchart_or_a_value(render: Render):
    subchart = render(set_values=("engineer.autoscaling.enabled=true", "nats.enabled=true"))
    endpoint = scaled_object(subchart)["spec"]["triggers"][0]["metadata"]["natsServerMonitoringEndpoint"]
    assert endpoint == f"{RELEASE}-nats.{NAMESPACE}.svc:8222"
    named = render(set_values=("engineer.autoscaling.enabled=true",
                               "engineer.autoscaling.natsMonitoringEndpoint=nats-mon.ops.svc:8222"))
    assert scaled_object(named)["spec"]["triggers"][0]["metadata"]["natsServerMonitoringEndpoint"] == \
        "nats-mon.ops.svc:8222"


def test_the_run_keeps_as_many_jobs_in_flight_as_the_pool_can_train(everything_render: Rendered):
    (start,) = everything_render.get("Job", f"{RELEASE}-asi-arch-run")["spec"]["template"]["spec"]["containers"]
    maximum = everything_render.values["engineer"]["autoscaling"]["maxReplicas"]
    assert f"--engineers={maximum}" in start["args"], "fewer jobs than engineers would never scale the pool up"


@pytest.mark.parametrize(("values", "refusal"), [
    (("engineer.autoscaling.enabled=true", "engineer.autoscaling.minReplicas=5",
      "engineer.autoscaling.maxReplicas=2"), "minReplicas is above maxReplicas"),
    (("engineer.autoscaling.maxReplicas=0",), "schema"),
])
def test_impossible_scaling_is_refused(helm: str, offline_chart: Path, values: tuple[str, ...], refusal: str):
    done = template(helm, offline_chart, *values)
    assert done.returncode != 0
    assert refusal in done.stderr


def test_the_researcher_creates_the_jobs_consumer_with_the_engineers_settings(everything_render: Rendered):
    researcher, engineer = everything_render.env("researcher"), everything_render.env("engineer")
    for setting in ("ASI_JOB_ACK_WAIT_S", "ASI_JOB_MAX_DELIVER"):
        assert researcher[setting] == engineer[setting], setting
