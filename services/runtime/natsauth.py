"""Who may do what on NATS: a user per service role, each publishing only the event types it owns.

The embedded server of a data dir runs with the generated configuration below: no anonymous
client, one password per role, and permissions by subject. An event's subject ends with its type
(``asi.events.<aggregate>.<EventType>``), so an engineer can publish ``TrainingFinished`` but not
``ArchitectureJudged``: a forged verdict is refused by the server before any reader sees it. The
JetStream API is open only as far as the services use it (stream info and reads, the jobs
consumer); no service may delete, purge or reconfigure a stream. The ``operator`` (the launcher
and the command-line tools) may do everything.

The passwords live in ``<data_dir>/nats-auth/``, a folder only its owner may open; services get
theirs in ``ASI_NATS_USER`` / ``ASI_NATS_PASSWORD``, which the sandbox never passes on.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from services.runtime.eventstore import EVENTS_STREAM, EVENTS_SUBJECT_ROOT, JOBS_STREAM, JOBS_SUBJECT
from services.runtime.private import private_folder

OPERATOR = "operator"
# The event types each service role appends. EventRejected: every reader records what it rejects.
OWNED_EVENTS: dict[str, tuple[str, ...]] = {
    "researcher": ("ArchitectureProposed", "ProposalRejected", "TrainingRequested", "ArchitectureDiscarded",
                   "RunFinished", "LLMExchangeFailed", "EventRejected"),
    "engineer": ("TrainingStarted", "TrainingProgress", "TrainingFinished", "TrainingFailed", "EventRejected"),
    "judge": ("TrainingRequested", "ArchitectureJudged", "ArchitectureDiscarded", "LeakChecked",
              "PromotionRequested", "ArchitecturePromoted", "PromotionDenied", "EventRejected"),
    "analyst": ("ArchitectureAnalyzed", "EventRejected"),
    "cognition": ("EventRejected",),
}
JOB_PUBLISHERS = {"researcher", "judge"}  # training jobs: the researcher's experiments, the judge's re-runs
ROLES = (OPERATOR, *OWNED_EVENTS)
# The JetStream API as the services use it: streams made idempotently at start (an existing stream
# with another configuration is refused, never changed), messages read by sequence or in batches
# through a short-lived consumer of the log, the jobs consumer made, inspected and pulled, and jobs
# acknowledged.
SERVICE_API = (
    *(f"$JS.API.STREAM.{verb}.{stream}" for verb in ("CREATE", "INFO") for stream in (EVENTS_STREAM, JOBS_STREAM)),
    f"$JS.API.STREAM.MSG.GET.{EVENTS_STREAM}",
    f"$JS.API.DIRECT.GET.{EVENTS_STREAM}",
    f"$JS.API.CONSUMER.CREATE.{EVENTS_STREAM}",
    f"$JS.API.CONSUMER.CREATE.{EVENTS_STREAM}.>",
    f"$JS.API.CONSUMER.MSG.NEXT.{EVENTS_STREAM}.*",
    f"$JS.API.CONSUMER.CREATE.{JOBS_STREAM}.>",
    f"$JS.API.CONSUMER.DURABLE.CREATE.{JOBS_STREAM}.*",
    f"$JS.API.CONSUMER.INFO.{JOBS_STREAM}.*",
    f"$JS.API.CONSUMER.MSG.NEXT.{JOBS_STREAM}.*",
    f"$JS.ACK.{JOBS_STREAM}.>",
)
SUBSCRIBE = (f"{EVENTS_SUBJECT_ROOT}.>", "_INBOX.>")  # the wake-ups of `follow`, and every reply


def publish_allowed(role: str) -> list[str]:
    if role == OPERATOR:
        return [">"]
    subjects = [f"{EVENTS_SUBJECT_ROOT}.*.{event_type}" for event_type in OWNED_EVENTS[role]]
    return subjects + ([JOBS_SUBJECT] if role in JOB_PUBLISHERS else []) + list(SERVICE_API)


def password_variable(role: str) -> str:
    """The environment variable a server reads a role's password from (see `server_config`)."""
    return f"ASI_NATS_PASSWORD_{role.upper()}"


def users(passwords: dict[str, str]) -> list[dict]:
    """The users of the server's `authorization` block, with their permissions."""
    found = []
    for role in ROLES:
        user: dict = {"user": role, "password": passwords[role]}
        if role != OPERATOR:
            user["permissions"] = {"publish": {"allow": publish_allowed(role)},
                                   "subscribe": {"allow": list(SUBSCRIBE)}}
        found.append(user)
    return found


def server_config(passwords: dict[str, str] | None = None) -> str:
    """nats-server's `authorization` block (JSON is valid NATS configuration). Without passwords,
    each is a reference to the server's environment (``$ASI_NATS_PASSWORD_<ROLE>``), for a server
    started elsewhere (`asi-arch nats-authorization`)."""
    given = passwords or {role: f"${password_variable(role)}" for role in ROLES}
    text = json.dumps({"authorization": {"users": users(given)}}, indent=2) + "\n"
    if passwords is None:  # NATS resolves a variable only where it stands unquoted
        for role in ROLES:
            text = text.replace(f'"${password_variable(role)}"', f"${password_variable(role)}")
    return text


@dataclass(frozen=True)
class NatsAuth:
    """A data dir's NATS credentials: made once, kept for every later start on the same store."""

    folder: Path
    passwords: dict[str, str]

    @property
    def config_path(self) -> Path:
        return self.folder / "nats-server.conf"

    def credentials(self, role: str) -> tuple[str, str]:
        """(user, password) of a service role, or of the operator."""
        if role not in self.passwords:
            raise KeyError(f"no NATS role {role!r}; the roles are {', '.join(ROLES)}")
        return role, self.passwords[role]

    @classmethod
    def of_data_dir(cls, data_dir: Path) -> NatsAuth:
        folder = data_dir / "nats-auth"
        secrets_file = folder / "credentials.json"
        private_folder(folder)
        passwords = json.loads(secrets_file.read_text()) if secrets_file.exists() else {}
        if set(passwords) != set(ROLES):
            passwords = {role: passwords.get(role) or secrets.token_urlsafe(24) for role in ROLES}
            _write_private(secrets_file, json.dumps(passwords, indent=2) + "\n")
        auth = cls(folder, passwords)
        _write_private(auth.config_path, server_config(passwords))  # follows the code's permissions
        return auth


def _write_private(path: Path, text: str) -> None:
    """Written through a descriptor opened 0600, so the secret is never readable by others."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    path.chmod(0o600)
