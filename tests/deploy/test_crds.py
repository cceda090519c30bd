"""The chart's custom resources (KEDA's ScaledObject, Prometheus Operator's ServiceMonitor) validate
against the CRDs those operators install, vendored in tests/deploy/crds/ (see its README).

The API server prunes fields a CRD does not declare instead of refusing them, so a misspelt field
would vanish silently in a cluster. Here every object schema that declares its properties, and does
not ask to keep unknown fields, refuses any other: a typo fails the test."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.conftest import Rendered

CRDS = Path(__file__).resolve().parent / "crds"


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """The CRD's openAPIV3Schema with unknown fields refused wherever the schema names its fields."""
    schema = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if ("properties" in node and "additionalProperties" not in node
                    and not node.get("x-kubernetes-preserve-unknown-fields")):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(schema)
    return schema


def crd_schema(kind: str, api_version: str) -> dict[str, Any]:
    group, version = api_version.split("/")
    for path in CRDS.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        spec = crd["spec"]
        if spec["names"]["kind"] == kind and spec["group"] == group:
            (served,) = [v for v in spec["versions"] if v["name"] == version]
            return strict(served["schema"]["openAPIV3Schema"])
    raise AssertionError(f"no vendored CRD for {kind} {api_version}")


def custom_resources(rendered: Rendered) -> list[dict[str, Any]]:
    return rendered.of_kind("ScaledObject") + rendered.of_kind("ServiceMonitor")


def test_every_scaled_object_and_service_monitor_validates_against_its_crd(everything_render: Rendered):
    resources = custom_resources(everything_render)
    assert {o["kind"] for o in resources} == {"ScaledObject", "ServiceMonitor"}, "everything-on renders each kind"
    for resource in resources:
        jsonschema.validate(resource, crd_schema(resource["kind"], resource["apiVersion"]))


def test_a_misspelt_field_is_refused(everything_render: Rendered):
    (scaler,) = everything_render.of_kind("ScaledObject")
    misspelt = copy.deepcopy(scaler)
    misspelt["spec"]["maxReplicas"] = misspelt["spec"].pop("maxReplicaCount")  # the HPA's name, not KEDA's
    with pytest.raises(jsonschema.ValidationError, match="maxReplicas"):
        jsonschema.validate(misspelt, crd_schema("ScaledObject", scaler["apiVersion"]))
    monitor = everything_render.of_kind("ServiceMonitor")[0]
    wrong = copy.deepcopy(monitor)
    wrong["spec"]["endpoints"][0]["intervall"] = "30s"
    with pytest.raises(jsonschema.ValidationError, match="intervall"):
        jsonschema.validate(wrong, crd_schema("ServiceMonitor", monitor["apiVersion"]))
