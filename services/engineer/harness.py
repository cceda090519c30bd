"""The engineer's entry points: pre-flight probes and whole experiments on candidate code.

``check_code`` runs the probes; ``run_experiment`` runs the probes, then trains and evaluates
under a profile.  Both read the code statically first (imports and escape hatches are refused
without starting a process), then run it in the sandbox, and never raise for a candidate's
fault: a failure is a value, ``{"kind", "message", "traceback"}``, the researcher repairs from.
"""

from __future__ import annotations

import ast
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from services.engineer.baselines import baseline_code
from services.engineer.data import prepare_corpus
from services.engineer.placement import experiment_threads
from services.engineer.profiles import get_profile
from services.engineer.sandbox import Limits, run_sandboxed
from services.runtime.private import private_folder

DATA_DIR_ENV = "ASI_DATA_DIR"  # the same variable the services read (services/runtime/config.py)
CHECK_TIMEOUT_S = 180.0  # probes take seconds; the rest is slack for a loaded machine
CHECK_MEMORY_MB = 6144
ALLOWED_IMPORTS = frozenset({"torch", "math", "einops", "kernels", "__future__"})
# Builtins that reach outside the mixer: code execution, files, the interpreter's namespaces.
FORBIDDEN_BUILTINS = frozenset({"__import__", "eval", "exec", "compile", "open", "globals", "locals", "vars",
                                "breakpoint", "input", "exit", "quit", "help"})
# Attributes that lead from torch to the OS, the network, files or a compiler.
FORBIDDEN_ATTRIBUTES = frozenset({"os", "sys", "subprocess", "socket", "builtins", "ctypes", "importlib",
                                  "multiprocessing", "hub", "load", "save", "cpp_extension", "load_library",
                                  "environ", "system", "popen", "distributed", "serialization", "compile",
                                  "_dynamo", "_inductor", "_C", "from_file", "tofile"})
ALLOWED_DUNDERS = frozenset({"__init__", "__name__", "__class__", "__call__"})


def _failure(kind: str, message: str, traceback: str = "") -> dict:
    return {"kind": kind, "message": message, "traceback": traceback}


def static_check(code: str) -> dict | None:
    """Refuse, without running anything, code that breaks the import rule or reaches for escape hatches.

    This is a courtesy (a precise message and line); the sandbox is the boundary.
    """
    try:
        tree = ast.parse(code, filename="candidate.py")
    except SyntaxError as exc:
        return _failure("syntax_error", f"line {exc.lineno}: {exc.msg}", f"{exc.text or ''}")
    allowed = ", ".join(sorted(ALLOWED_IMPORTS - {"__future__"}))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            if isinstance(node, ast.ImportFrom) and (node.level or node.module is None):
                return _failure("forbidden_import", f"line {node.lineno}: relative imports are not allowed; "
                                                    f"a mixer may import only {allowed}")
            modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module]
            for module in modules:
                if module.split(".")[0] not in ALLOWED_IMPORTS:
                    return _failure("forbidden_import", f"line {node.lineno}: import of {module!r} is not allowed; "
                                                        f"a mixer may import only {allowed}")
        elif isinstance(node, ast.Name) and node.id in FORBIDDEN_BUILTINS:
            return _failure("sandbox_violation", f"line {node.lineno}: {node.id!r} is not available to a mixer")
        elif isinstance(node, ast.Attribute):
            name = node.attr
            dunder = name.startswith("__") and name.endswith("__") and name not in ALLOWED_DUNDERS
            if dunder or name in FORBIDDEN_ATTRIBUTES:
                return _failure("sandbox_violation", f"line {node.lineno}: attribute {name!r} is not available "
                                                     "to a mixer")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr":
            target = node.args[1] if len(node.args) > 1 else None
            if not (isinstance(target, ast.Constant) and isinstance(target.value, str)):
                return _failure("sandbox_violation", f"line {node.lineno}: getattr with a computed name is not "
                                                     "allowed; name the attribute")
            if target.value in FORBIDDEN_ATTRIBUTES or target.value.startswith("__"):
                return _failure("sandbox_violation", f"line {node.lineno}: attribute {target.value!r} is not "
                                                     "available to a mixer")
    return None


def _fold(events: list[dict]) -> tuple[dict, dict | None, dict | None, dict]:
    """Checks by name, the failure (if any), the result (if any) and the isolation report."""
    checks: dict = {}
    failure = result = None
    isolation: dict = {}
    for event in events:
        kind = event["event"]
        if kind == "check":
            checks[event["name"]] = event["result"]
        elif kind == "failure":
            failure = _failure(event.get("kind", "crashed"), event.get("message", ""), event.get("traceback", ""))
        elif kind == "result":
            result = {k: v for k, v in event.items() if k != "event"}
        elif kind == "isolation":
            isolation = {k: v for k, v in event.items() if k != "event"}
    return checks, failure, result, isolation


def _is_quadratic_reference(code: str) -> bool:
    """Softmax attention, the quadratic reference, is exempt from the complexity probe."""
    return code == baseline_code("softmax_attention")


def check_code(code: str, *, profile: str | None = None, timeout_s: float | None = None) -> dict:
    """The probes alone, sandboxed: ``{"ok", "checks": {name: {"ok", ...}}, "errors": [...], "fingerprint"}``.

    The parameter budget is judged at ``profile``'s width and heads if given, else at the probe width.
    """
    rejected = static_check(code)
    if rejected:
        return {"ok": False, "checks": {"build": {"ok": False, "error": rejected["message"]}},
                "errors": [rejected], "failure": rejected}
    request = {"mode": "check", "profile": profile, "allow_quadratic": _is_quadratic_reference(code)}
    # One thread: the probes' tensors are too small to gain from more, and spare cores serve other work.
    limits = Limits(timeout_s=timeout_s or CHECK_TIMEOUT_S, memory_mb=CHECK_MEMORY_MB, threads=1)
    checks, failure, result, isolation = _fold(run_sandboxed(request, code, limits))
    report = {"ok": failure is None and bool(checks) and all(c["ok"] for c in checks.values()),
              "checks": checks, "errors": [failure] if failure else [], "isolation": isolation,
              # The functional fingerprint (services/researcher/novelty.py), computed in the sandbox
              # once every probe passed: the researcher's novelty gate for code it must not run itself.
              "fingerprint": (result or {}).get("fingerprint", "")}
    if failure:
        report["failure"] = failure
    return report


def run_experiment(
    code: str,
    profile: str,
    seed: int,
    *,
    corpus: str | None = None,
    on_progress: Callable[[dict], None] | None = None,
    timeout_s: float | None = None,
    data_dir: str | os.PathLike | None = None,
    threads: int | None = None,
) -> dict:
    """Probes, then training and evaluation under ``profile``, all in one sandboxed process.

    Success: ``{"ok": True, "val_loss", "benchmarks", "benchmark_mean", "params", "tokens_per_s",
    "train_seconds", "checks", "checkpoint"}``; the checkpoint is stored as
    ``<data_dir>/checkpoints/<sha256>.pt``.  Failure: ``{"ok": False, "failure", "checks"}``.
    ``threads`` overrides the profile's thread count (several experiments sharing the cores).
    """
    spec = get_profile(profile)
    data = Path(data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV, ".asi"))
    rejected = static_check(code)
    if rejected:
        return {"ok": False, "failure": rejected, "checks": {"build": {"ok": False, "error": rejected["message"]}}}
    train_path, val_path = prepare_corpus(corpus, data)
    request = {"mode": "experiment", "profile": spec.name, "seed": seed, "train_path": str(train_path.resolve()),
               "val_path": str(val_path.resolve()), "allow_quadratic": _is_quadratic_reference(code)}
    threads = threads or spec.threads or experiment_threads()
    limits = Limits(timeout_s=timeout_s or spec.timeout_s, memory_mb=spec.memory_mb, threads=threads)

    def forward_progress(event: dict) -> None:
        if event["event"] == "progress" and on_progress is not None:
            on_progress({k: v for k, v in event.items() if k != "event"})

    private_folder(data / "checkpoints")
    landing = Path(tempfile.mkdtemp(prefix="incoming-", dir=data / "checkpoints"))
    try:
        events = run_sandboxed(request, code, limits, forward_progress, keep=("checkpoint.pt",), keep_dir=landing)
        checks, failure, result, isolation = _fold(events)
        # Seconds per phase as the child timed them (process start, imports, each probe, training, ...).
        phases = {event["name"]: event["seconds"] for event in events if event["event"] == "phase"}
        if failure or result is None:
            return {"ok": False, "failure": failure or _failure("crashed", "no result"), "checks": checks,
                    "isolation": isolation, "phases": phases}
        checkpoint = _store_checkpoint(landing / "checkpoint.pt", data / "checkpoints")
    finally:
        shutil.rmtree(landing, ignore_errors=True)
    return {
        "ok": True,
        "val_loss": result["val_loss"],
        "benchmarks": result["benchmarks"],
        "benchmark_mean": result["benchmark_mean"],
        "params": result["params"],
        "tokens_per_s": result["tokens_per_s"],
        "train_seconds": result["train_seconds"],
        "train_loss": result["train_loss"],
        "flops_per_token": result["flops_per_token"],
        "mfu": result["mfu"],
        "checks": checks,
        "checkpoint": checkpoint,
        "isolation": isolation,
        "phases": phases,
    }


def _store_checkpoint(path: Path, store: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    name = digest.hexdigest()
    target = store / f"{name}.pt"
    if not target.exists():
        path.replace(target)
    return name
