"""Every pod is hardened, probed over gRPC health, exposes metrics, and gets the right
addresses; engineer pods, where candidate code runs, reach only NATS and DNS."""

from __future__ import annotations

import pytest

from tests.deploy.conftest import NAMESPACE, RELEASE, SERVICES, Rendered, pod_volumes


def service_name(component: str) -> str:
    return f"{RELEASE}-asi-arch-{component}"


def test_every_service_has_a_deployment(rendered: Rendered):
    names = {o["metadata"]["name"] for o in rendered.pods()}
    assert {service_name(s) for s in SERVICES} <= names


SANDBOXING = {service_name("engineer"), service_name("judge")}  # the engineer's experiments, the judge's leak rule
SANDBOX_CAPABILITIES = ["CHOWN", "SETUID", "SETGID", "KILL"]


def test_every_pod_is_hardened(rendered: Rendered):
    for maker in rendered.pods():
        name, spec = maker["metadata"]["name"], maker["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] != 0, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        volumes = pod_volumes(maker)
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["privileged"] is False, name
            if name in SANDBOXING:
                # Candidate code runs here, as a user of its own: the worker starts as root with only
                # what the switch takes (tests/faults/test_sandbox_in_a_pod.py runs under exactly these).
                assert context["runAsUser"] == 0 and context["runAsNonRoot"] is False, name
                assert context["capabilities"] == {"drop": ["ALL"], "add": SANDBOX_CAPABILITIES}, name
            else:
                assert context["runAsNonRoot"] is True and "runAsUser" not in context, name
                assert context["capabilities"] == {"drop": ["ALL"]}, name
            mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
            assert "emptyDir" in mounts["/tmp"], f"{name}: /tmp must be a writable emptyDir"
            assert not any(m.get("readOnly") for m in container["volumeMounts"]), name


def test_the_data_dir_is_a_writable_volume(rendered: Rendered):
    for component in SERVICES:
        container = rendered.container(component)
        volumes = pod_volumes(rendered.workload(component))
        data_dir = rendered.env(component)["ASI_DATA_DIR"]
        (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == data_dir]
        volume = volumes[mount["name"]]
        persistence = rendered.values[component]["persistence"]
        if "claimTemplate" in volume:  # engineers, each with a claim of its own
            assert component == "engineer" and persistence["enabled"]
            assert "ReadWriteMany" not in volume["claimTemplate"]["accessModes"]
        elif persistence["enabled"]:
            claim = persistence["existingClaim"] or service_name(component)
            assert volume["persistentVolumeClaim"]["claimName"] == claim
        else:
            assert "emptyDir" in volume


def test_readiness_is_grpc_health_and_liveness_is_the_port_answering(rendered: Rendered):
    for component in SERVICES:
        container = rendered.container(component)
        grpc_port = int(rendered.env(component)["ASI_GRPC_PORT"])
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["grpc"] == grpc_port
        for probe in ("startupProbe", "readinessProbe"):
            # the empty service name: the server's overall health, NOT_SERVING until caught up
            assert container[probe]["grpc"] == {"port": grpc_port}, f"{component} {probe}"
        # liveness asks only that the process answers: a service behind the log turns unready,
        # it is not restarted (which would only start its catch-up again)
        liveness = container["livenessProbe"]
        assert liveness["tcpSocket"] == {"port": "grpc"} and "grpc" not in liveness, component
        assert liveness != container["readinessProbe"]


def test_every_pod_serves_metrics(rendered: Rendered):
    for component in SERVICES:
        ports = {p["name"]: p["containerPort"] for p in rendered.container(component)["ports"]}
        assert ports["metrics"] == int(rendered.env(component)["ASI_METRICS_PORT"])
        service = rendered.get("Service", service_name(component))
        (metrics,) = [p for p in service["spec"]["ports"] if p["name"] == "metrics"]
        assert metrics["targetPort"] == "metrics"
        assert service["spec"]["selector"].items() <= \
            rendered.workload(component)["spec"]["template"]["metadata"]["labels"].items()


@pytest.mark.parametrize("component", ["cognition", "analyst"])
def test_grpc_apis_have_a_cluster_service(rendered: Rendered, component: str):
    service = rendered.get("Service", service_name(component))
    assert service["spec"]["type"] == "ClusterIP" and service["spec"].get("clusterIP") != "None"
    (grpc,) = [p for p in service["spec"]["ports"] if p["name"] == "grpc"]
    assert grpc["targetPort"] == "grpc"


def test_services_get_the_right_addresses(rendered: Rendered):
    nats_url = rendered.values["natsUrl"]
    for component in SERVICES:
        env = rendered.env(component)
        assert env["ASI_NATS_URL"] == nats_url, component
        assert env["ASI_GRPC_PORT"] == str(rendered.values["ports"]["grpc"])
        assert env.get("ASI_RUN_ID", "") == rendered.values["runId"], component
    for component in ("researcher", "judge", "analyst"):
        env = rendered.env(component)
        for variable, target in (("ASI_COGNITION_ADDR", "cognition"), ("ASI_LINEAGE_ADDR", "analyst")):
            host, port = env[variable].rsplit(":", 1)
            service = rendered.get("Service", service_name(target))
            assert host == f"{service['metadata']['name']}.{NAMESPACE}.svc", f"{component} {variable}"
            assert int(port) in {p["port"] for p in service["spec"]["ports"] if p["name"] == "grpc"}
    engineer = rendered.env("engineer")
    assert engineer["ASI_WORKER_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert not {"ASI_COGNITION_ADDR", "ASI_LINEAGE_ADDR", "ASI_LLM_URL"} & engineer.keys(), \
        "engineer pods may reach only NATS"
    qdrant_url = rendered.values["qdrantUrl"]
    assert rendered.env("cognition").get("ASI_QDRANT_URL", "") == qdrant_url


def test_the_llm_url_points_at_the_vllm_service_when_enabled(default_render: Rendered, everything_render: Rendered):
    for component in SERVICES:
        assert "ASI_LLM_URL" not in default_render.env(component), "no LLM by default: the offline mind"
    service = everything_render.get("Service", service_name("llm"))
    (http,) = service["spec"]["ports"]
    for component in ("researcher", "judge", "analyst"):
        env = everything_render.env(component)
        assert env["ASI_LLM_URL"] == f"http://{service['metadata']['name']}.{NAMESPACE}.svc:{http['port']}/v1"
        assert env["ASI_LLM_MODEL"] == "qwen3-8b"  # the served model name
    vllm = everything_render.container("llm")
    assert vllm["image"].startswith("vllm/vllm-openai:")
    assert "--served-model-name=qwen3-8b" in vllm["args"]
    gpus = everything_render.values["llm"]["gpu"]["count"]
    assert gpus == 2 and vllm["resources"]["limits"]["nvidia.com/gpu"] == gpus
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert vllm[probe]["httpGet"] == {"path": "/health", "port": "http"}


def test_engineer_egress_is_nats_and_dns_only(rendered: Rendered):
    policy = rendered.get("NetworkPolicy", f"{service_name('engineer')}-egress")
    engineer_labels = rendered.workload("engineer")["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= engineer_labels.items()
    assert policy["spec"]["policyTypes"] == ["Egress"]
    rules = policy["spec"]["egress"]
    for rule in rules:
        assert rule.get("to"), "a rule without peers would allow egress to anywhere"
        assert rule.get("ports"), "a rule without ports would allow every port"
    allowed = {(p["protocol"], p["port"]) for rule in rules for p in rule["ports"]}
    assert allowed == {("TCP", 4222), ("UDP", 53), ("TCP", 53)}
    (nats_rule,) = [r for r in rules if r["ports"] == [{"protocol": "TCP", "port": 4222}]]
    configured = rendered.values["engineer"]["networkPolicy"]["natsPeers"]
    assert nats_rule["to"] == (configured or [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "nats"}}}])
    # no other policy widens the engineer's egress
    others = [p for p in rendered.of_kind("NetworkPolicy") if p is not policy]
    assert all(not (p["spec"]["podSelector"].get("matchLabels", {}).items() <= engineer_labels.items())
               for p in others)
