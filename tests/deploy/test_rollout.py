"""Storage, disruption and scheduling: engineers never share one ReadWriteOnce claim, the chart
refuses combinations that cannot run, drains and rollouts keep the pool working, every
container is bounded, and the values schema refuses keys it does not know."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.conftest import EVERYTHING_ON, RELEASE, SERVICES, Render, Rendered, pod_volumes, template

DIGEST = "sha256:" + "ab" * 32


def test_persistent_engineers_get_a_claim_each(gpu_cluster_render: Rendered):
    engineer = gpu_cluster_render.workload("engineer")
    assert engineer["kind"] == "StatefulSet"
    assert engineer["spec"]["serviceName"] == engineer["metadata"]["name"]
    assert gpu_cluster_render.get("Service", engineer["spec"]["serviceName"])["spec"]["clusterIP"] == "None"
    (claim,) = engineer["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["storageClassName"] == "fast-ssd"
    assert claim["spec"]["resources"]["requests"]["storage"] == "50Gi"
    assert "claimTemplate" in pod_volumes(engineer)["data"]
    chart_claims = {c["metadata"]["name"] for c in gpu_cluster_render.of_kind("PersistentVolumeClaim")}
    assert f"{RELEASE}-asi-arch-engineer" not in chart_claims, "no claim shared by the replicas"


def test_a_shared_engineer_claim_is_read_write_many(everything_render: Rendered):
    engineer = everything_render.workload("engineer")
    assert engineer["kind"] == "Deployment"
    shared = everything_render.get("PersistentVolumeClaim", f"{RELEASE}-asi-arch-engineer")
    assert shared["spec"]["accessModes"] == ["ReadWriteMany"]


@pytest.mark.parametrize("values", [
    ("engineer.persistence.enabled=true", "engineer.persistence.existingClaim=cache"),
    ("researcher.replicas=2", "researcher.persistence.enabled=true"),
    ("engineer.replicas=1", "engineer.persistence.enabled=true", "engineer.persistence.existingClaim=cache",
     "engineer.autoscaling.enabled=true", "engineer.autoscaling.maxReplicas=4"),
])
def test_one_read_write_once_claim_for_several_replicas_is_refused(helm: str, offline_chart: Path,
                                                                    values: tuple[str, ...]):
    done = template(helm, offline_chart, *values)
    assert done.returncode != 0
    assert "cannot serve several replicas" in done.stderr


def test_one_replica_may_keep_one_claim(render: Render):
    single = render(set_values=("researcher.persistence.enabled=true",))
    volume = pod_volumes(single.workload("researcher"))["data"]
    assert volume["persistentVolumeClaim"]["claimName"] == f"{RELEASE}-asi-arch-researcher"


def test_every_pool_of_several_replicas_has_a_disruption_budget(rendered: Rendered):
    budgets = {b["metadata"]["name"]: b for b in rendered.of_kind("PodDisruptionBudget")}
    for workload in (rendered.workload(c) for c in SERVICES):
        most = rendered.values["engineer"]["autoscaling"]["maxReplicas"] if "replicas" not in workload["spec"] else 0
        name, replicas = workload["metadata"]["name"], workload["spec"].get("replicas", most)
        if replicas > 1:
            budget = budgets.pop(name)
            assert budget["spec"]["maxUnavailable"] == rendered.values["podDisruptionBudget"]["maxUnavailable"]
            assert budget["spec"]["selector"]["matchLabels"].items() <= \
                workload["spec"]["template"]["metadata"]["labels"].items()
        else:
            assert name not in budgets, f"{name}: a budget on one replica would block every drain"
    assert not budgets, f"budgets that select no pool: {set(budgets)}"


def test_engineers_spread_over_nodes(rendered: Rendered):
    engineer = rendered.workload("engineer")
    (spread,) = engineer["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname" and spread["maxSkew"] == 1
    assert spread["labelSelector"]["matchLabels"].items() <= engineer["spec"]["template"]["metadata"]["labels"].items()


def test_spreading_engineers_can_be_turned_off(render: Render):
    packed = render(set_values=("engineer.topologySpread.enabled=false",))
    assert "topologySpreadConstraints" not in packed.workload("engineer")["spec"]["template"]["spec"]


def test_every_container_has_a_cpu_limit_and_an_ephemeral_storage_request(rendered: Rendered):
    for maker in rendered.pods():
        for container in maker["spec"]["template"]["spec"]["containers"]:
            resources = container["resources"]
            where = f"{maker['metadata']['name']}/{container['name']}"
            assert "cpu" in resources["limits"], where
            assert "ephemeral-storage" in resources["requests"], where
            assert "memory" in resources["limits"], where


def test_runtime_class_is_a_value(everything_render: Rendered, default_render: Rendered):
    assert everything_render.workload("engineer")["spec"]["template"]["spec"]["runtimeClassName"] == "gvisor"
    for maker in default_render.pods():
        assert "runtimeClassName" not in maker["spec"]["template"]["spec"]


def test_images_by_digest(render: Render):
    pinned = render(set_values=(f"image.digest={DIGEST}", f"image.gpuDigest=sha256:{'cd' * 32}",
                                "engineer.gpu.enabled=true"))
    assert pinned.container("judge")["image"] == f"asi-arch@{DIGEST}"
    assert pinned.container("engineer")["image"] == f"asi-arch@sha256:{'cd' * 32}", "the GPU variant's digest"
    (start,) = pinned.get("Job", f"{RELEASE}-asi-arch-run")["spec"]["template"]["spec"]["containers"]
    assert start["image"] == f"asi-arch@{DIGEST}"


@pytest.mark.parametrize("bad", ["colour=blue", "engineers.replicas=3", f"image.digest={DIGEST[:-1]}",
                                 "run.profile=huge", "engineer.autoscaling.speed=2"])
def test_the_values_schema_refuses_unknown_keys_and_bad_values(helm: str, offline_chart: Path, bad: str):
    done = template(helm, offline_chart, bad)
    assert done.returncode != 0, f"{bad} was accepted"
    assert "schema" in done.stderr, done.stderr


def test_vllm_follows_its_gpus_and_rolls_out_by_recreating(everything_render: Rendered):
    vllm_deployment = everything_render.workload("llm")
    vllm = everything_render.container("llm")
    llm = everything_render.values["llm"]
    assert f"--tensor-parallel-size={llm['gpu']['count']}" in vllm["args"]
    assert vllm["resources"]["limits"]["nvidia.com/gpu"] == llm["gpu"]["count"]
    assert f"--max-model-len={llm['maxModelLen']}" in vllm["args"]
    assert len([a for a in vllm["args"] if a.startswith("--max-model-len")]) == 1
    assert vllm_deployment["spec"]["strategy"] == {"type": "Recreate"}, "a GPU holds one vLLM pod at a time"


def test_vllm_weights_on_a_claim_the_chart_makes(gpu_cluster_render: Rendered):
    claim_name = f"{RELEASE}-asi-arch-llm-models"
    claim = gpu_cluster_render.get("PersistentVolumeClaim", claim_name)
    assert claim["spec"]["resources"]["requests"]["storage"] == "50Gi"
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    models = pod_volumes(gpu_cluster_render.workload("llm"))["models"]
    assert models["persistentVolumeClaim"]["claimName"] == claim_name


def test_vllm_metrics_are_scraped(everything_render: Rendered):
    monitor = everything_render.get("ServiceMonitor", f"{RELEASE}-asi-arch-llm")
    service = everything_render.get("Service", f"{RELEASE}-asi-arch-llm")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert monitor["metadata"]["labels"]["release"] == everything_render.values["metrics"]["serviceMonitor"]["release"]


def test_the_llm_api_key_comes_from_a_secret_to_vllm_and_to_every_service_that_asks(render: Render):
    keyed = render(EVERYTHING_ON, set_values=("llm.apiKeySecret.name=vllm-api-key",))
    reference = {"secretKeyRef": {"name": "vllm-api-key", "key": "api-key"}}
    assert keyed.env("llm")["VLLM_API_KEY"] == reference
    for component in ("researcher", "judge", "analyst"):
        assert keyed.env(component)["ASI_LLM_API_KEY"] == reference, component
    assert "ASI_LLM_API_KEY" not in keyed.env("engineer")  # candidate code's pods never hold it
    plain = render(EVERYTHING_ON)
    assert "VLLM_API_KEY" not in plain.env("llm") and "ASI_LLM_API_KEY" not in plain.env("judge")
