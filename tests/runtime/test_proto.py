"""The generated protobuf code in services/pb must be what proto/*.proto generates now."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("proto_generate", ROOT / "proto" / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_code_is_not_stale(tmp_path: Path) -> None:
    fresh = {p.name: p.read_text() for p in load_generator().generate(tmp_path)}
    assert {"events_pb2.py", "jobs_pb2.py", "cognition_pb2_grpc.py", "lineage_pb2_grpc.py"} <= set(fresh)
    for name, text in fresh.items():
        current = ROOT / "services" / "pb" / name
        assert current.exists(), f"{current} is missing: run `make proto`"
        assert current.read_text() == text, f"{current} is stale: run `make proto`"


def test_every_event_type_of_the_loop_has_a_payload_message() -> None:
    from services.runtime.envelope import EVENT_TYPES

    loop = {"RunStarted", "ArchitectureProposed", "ProposalRejected", "TrainingRequested", "TrainingStarted",
            "TrainingProgress", "TrainingFinished", "TrainingFailed", "ArchitectureJudged", "ArchitectureDiscarded",
            "ArchitectureAnalyzed", "RunFinished"}
    assert loop <= set(EVENT_TYPES)
