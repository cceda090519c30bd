"""NATS credentials in the cluster: a Secret with a password per service role, each pod logged in
as its own role and given no other role's password, and the NATS subchart's users and
permissions exactly those of services/runtime/natsauth.py."""

from __future__ import annotations

import base64
from typing import Any

from services.runtime.natsauth import OPERATOR, ROLES, password_variable, users
from tests.deploy.conftest import SERVICES, Render, Rendered

SECRET = "asi-arch-nats-auth"


def secret_refs(pod_maker: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(variable, secret, key) of every secretKeyRef in the pods' containers."""
    found = []
    for container in pod_maker["spec"]["template"]["spec"]["containers"]:
        for variable in container.get("env", []):
            ref = variable.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                found.append((variable["name"], ref["name"], ref["key"]))
    return found


def test_the_secret_holds_a_random_password_per_role(render: Render) -> None:
    rendered = render()
    secret = rendered.get("Secret", SECRET)
    passwords = {role: base64.b64decode(value).decode() for role, value in secret["data"].items()}
    assert set(passwords) == set(ROLES)
    assert all(len(p) == 32 for p in passwords.values()) and len(set(passwords.values())) == len(ROLES)
    assert render().get("Secret", SECRET)["data"] != secret["data"]  # random, not typed into the chart


def test_each_pod_logs_in_as_its_own_role_with_no_other_roles_password(render: Render) -> None:
    rendered = render()
    for service in SERVICES:
        env = rendered.env(service)
        assert env["ASI_NATS_USER"] == service
        nats_refs = [(name, key) for name, secret, key in secret_refs(rendered.workload(service)) if secret == SECRET]
        assert nats_refs == [("ASI_NATS_PASSWORD", service)], service
    job = rendered.get("Job", f"{rendered_release(rendered)}-asi-arch-run")
    assert [r for r in secret_refs(job) if r[1] == SECRET] == [("ASI_NATS_PASSWORD", SECRET, OPERATOR)]


def rendered_release(rendered: Rendered) -> str:
    return rendered.get("Secret", SECRET)["metadata"]["labels"]["app.kubernetes.io/instance"]


def test_a_secret_of_your_own_or_none_at_all(render: Render) -> None:
    own = render(set_values=("natsAuth.create=false", "natsAuth.secretName=mine"))
    assert not [s for s in own.of_kind("Secret") if s["metadata"]["name"] in (SECRET, "mine")]
    assert ("ASI_NATS_PASSWORD", "mine", "engineer") in secret_refs(own.workload("engineer"))
    open_server = render(set_values=("natsAuth.enabled=false",))
    assert not open_server.of_kind("Secret")
    assert "ASI_NATS_USER" not in open_server.env("judge")


def test_the_nats_subchart_knows_the_same_users_and_permissions(render: Render) -> None:
    values = render().values["nats"]
    expected = users({role: f"<< ${password_variable(role)} >>" for role in ROLES})
    assert values["config"]["merge"]["authorization"]["users"] == expected
    env = values["container"]["env"]
    assert env == {password_variable(role): {"valueFrom": {"secretKeyRef": {"name": SECRET, "key": role}}}
                   for role in ROLES}
