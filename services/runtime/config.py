"""Service settings, read once from the environment, failing fast at start-up.

The launcher (`asi-arch run`) and the Helm chart set the same variables, so a
service behaves alike on a laptop and in a pod.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


class ConfigError(RuntimeError):
    """A required setting is missing or malformed."""


def _port(name: str, default: int) -> int:
    raw = os.environ.get(name, str(default))
    try:
        port = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not a port number") from exc
    if not 0 <= port < 65536:
        raise ConfigError(f"{name}={port} is out of range")
    return port


@dataclass(frozen=True)
class Settings:
    nats_url: str
    data_dir: Path
    run_id: str  # empty: the service follows whatever run the log holds
    cognition_addr: str  # host:port of the cognition gRPC server
    lineage_addr: str  # host:port of the analyst's lineage gRPC server
    qdrant_url: str  # empty: local mode in data_dir (cognition only)
    llm_url: str  # empty: offline mind and measured heuristics
    llm_model: str
    grpc_port: int
    metrics_port: int  # 0: no metrics endpoint
    worker_id: str
    job_ack_wait_s: float  # how long a job may go without a heartbeat before redelivery
    job_max_deliver: int  # deliveries before a job becomes a dead letter
    promote_top_k: int = 3  # the judge's promotions per run (plus any candidate that beats the best so far)
    promote_seeds: int = 3  # seeds of a promotion's re-runs, the candidate's own seed included
    promote_above_baselines: bool = True  # only candidates whose fitness beats every baseline's are re-run
    promote_screen: bool = True  # re-run on the first seed alone first, the others only if it beats every baseline
    llm_api_key: str = ""  # the OpenAI-compatible server's key (vLLM --api-key); empty: none needed
    nats_user: str = ""  # this service's NATS role (services/runtime/natsauth.py); empty: no authentication
    nats_password: str = ""

    @classmethod
    def from_env(cls) -> Settings:
        nats_url = os.environ.get("ASI_NATS_URL", "")
        if not nats_url:
            raise ConfigError("ASI_NATS_URL is not set (e.g. nats://127.0.0.1:4222)")
        return cls(
            nats_url=nats_url,
            data_dir=Path(os.environ.get("ASI_DATA_DIR", ".asi")),
            run_id=os.environ.get("ASI_RUN_ID", ""),
            cognition_addr=os.environ.get("ASI_COGNITION_ADDR", "127.0.0.1:50051"),
            lineage_addr=os.environ.get("ASI_LINEAGE_ADDR", "127.0.0.1:50052"),
            qdrant_url=os.environ.get("ASI_QDRANT_URL", ""),
            llm_url=os.environ.get("ASI_LLM_URL", ""),
            llm_model=os.environ.get("ASI_LLM_MODEL", "default"),
            llm_api_key=os.environ.get("ASI_LLM_API_KEY", ""),
            nats_user=os.environ.get("ASI_NATS_USER", ""),
            nats_password=os.environ.get("ASI_NATS_PASSWORD", ""),
            grpc_port=_port("ASI_GRPC_PORT", 0),
            metrics_port=_port("ASI_METRICS_PORT", 0),
            worker_id=os.environ.get("ASI_WORKER_ID", f"{os.uname().nodename}-{os.getpid()}"),
            job_ack_wait_s=float(os.environ.get("ASI_JOB_ACK_WAIT_S", "30")),
            job_max_deliver=int(os.environ.get("ASI_JOB_MAX_DELIVER", "3")),
            promote_top_k=int(os.environ.get("ASI_PROMOTE_TOP_K", "3")),
            promote_seeds=int(os.environ.get("ASI_PROMOTE_SEEDS", "3")),
            promote_above_baselines=os.environ.get("ASI_PROMOTE_ABOVE_BASELINES", "1") != "0",
            promote_screen=os.environ.get("ASI_PROMOTE_SCREEN", "1") != "0",
        )
