"""The sandboxed side of an experiment: runs in its own process, reports JSON lines on a pipe.

Started by ``sandbox.run_sandboxed`` as ``python -I -B -c <bootstrap> SCRATCH FD``.  Order
matters: limits first, then everything that needs the outside world (imports, the corpus,
the reference mixer, a warm-up that triggers torch's lazy imports), then ``enter_jail``
(drop to the sandbox's own user, chdir to scratch, network filter, audit hook), and only then the candidate's code.
"""

from __future__ import annotations

import resource
import sys


def set_limits(limits: dict) -> None:
    """Kernel-enforced caps; set before anything else so nothing runs unbounded."""
    if limits.get("memory_bytes"):
        resource.setrlimit(resource.RLIMIT_AS, (limits["memory_bytes"], limits["memory_bytes"]))
    cpu = int(limits["cpu_seconds"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))  # SIGXCPU first, SIGKILL 5 s later
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_bytes"], limits["file_bytes"]))
    resource.setrlimit(resource.RLIMIT_NPROC, (limits["processes"], limits["processes"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


# Limits come before the heavy imports below; the bootstrap calls main(), which reads them first.
import ctypes  # noqa: E402
import errno  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import signal  # noqa: E402
import struct  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import types  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402

from services.runtime import processes  # noqa: E402

# The user candidate code runs as: one of its own per sandbox, drawn from a range no account and
# no file uses and which a pod's user namespace still maps (it maps 0-65535), so its process limit
# counts its own processes only, and after it ends every process of that user can be killed.
SANDBOX_UIDS = range(40_000, 60_000)
CANDIDATE_FILE = "candidate.py"
TRACEBACK_CHARS = 4000  # enough for the candidate's frames; the researcher's context is finite
MEMORY_MESSAGES = ("can't allocate memory", "not enough memory", "out of memory", "cannot allocate memory")
# Audit events the candidate may never cause: process creation, networking, environment changes.
FORBIDDEN_EVENTS = ("socket.", "subprocess.", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
                    "os.forkpty", "os.kill", "os.killpg", "pty.", "os.putenv", "os.unsetenv", "sys.addaudithook",
                    "os.setuid", "os.setgid", "webbrowser.", "urllib.", "ftplib.", "smtplib.", "http.", "poplib.")
# Audit events that modify the file system: allowed inside the scratch directory only.
PATH_EVENTS = ("os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.link",
               "os.symlink", "os.truncate", "os.utime", "shutil.rmtree", "shutil.move", "shutil.copyfile")
WORLD_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")
MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8  # from <sys/mount.h>
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)  # the file system (or the user's quota) is full


class Channel:
    """JSON lines to the parent over an inherited pipe (stdout stays free for the candidate's prints)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def emit(self, event: dict) -> None:
        os.write(self.fd, (json.dumps(event) + "\n").encode())

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the block and report it as a ``phase`` event (the experiment benchmark's breakdown)."""
        started = time.perf_counter()
        yield
        self.emit({"event": "phase", "name": name, "seconds": time.perf_counter() - started})


def excerpt(exc: BaseException) -> str:
    text = "".join(traceback.format_exception(exc))
    return text if len(text) <= TRACEBACK_CHARS else "...\n" + text[-TRACEBACK_CHARS:]


def os_error_behind(exc: BaseException) -> OSError | None:
    """The OSError that `exc` is or was raised while handling: torch's writer reports a full disk
    as a RuntimeError ("unexpected pos") whose context is the OSError of the failed write."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def classify(exc: BaseException, default: str, stage: str = "") -> str:
    if isinstance(exc, MemoryError) or any(m in str(exc).lower() for m in MEMORY_MESSAGES):
        return "memory"
    os_error = os_error_behind(exc)
    code = os_error.errno if os_error is not None else None
    # The harness's own checkpoint past the file-size limit is storage that ran out, not a violation.
    if code in DISK_FULL_ERRNOS or (stage == "checkpoint" and code == errno.EFBIG):
        return "disk_full"
    if isinstance(os_error, PermissionError) or code == errno.EFBIG:
        return "sandbox_violation"  # denied by the OS, or a file past the size limit
    if isinstance(exc, FloatingPointError):
        return "non_finite"
    return default


def _inside(path: object, scratch: str) -> bool:
    if isinstance(path, int):  # an already-open descriptor: judged when it was opened
        return True
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    resolved = os.path.realpath(os.path.join(scratch, os.fspath(path)))
    return resolved == scratch or resolved.startswith(scratch + os.sep)


def install_audit_hook(scratch: str, channel: Channel) -> None:
    """From now on, a forbidden operation ends the process at once with a ``sandbox_violation``.

    The hook exits instead of raising, so the candidate cannot catch and ignore it.  The OS
    limits (no network namespace, the seccomp filter, the sandbox's own uid) stand behind it; this
    layer names the fault.
    """

    def violation(message: str) -> None:
        channel.emit({"event": "failure", "kind": "sandbox_violation", "message": message,
                      "traceback": "".join(traceback.format_stack(limit=12))[-TRACEBACK_CHARS:]})
        os._exit(3)

    def hook(event: str, args: tuple) -> None:
        if event.startswith(FORBIDDEN_EVENTS):
            violation(f"forbidden operation {event} {args!r:.200}")
        elif event == "open" and len(args) >= 3:
            path, mode, flags = args[0], args[1], args[2]
            writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & WRITE_FLAGS)
            if writing and not _inside(path, scratch):
                violation(f"write outside the scratch directory: {path!r}")
        elif event.startswith(PATH_EVENTS) and args and not _inside(args[0], scratch):
            violation(f"{event} outside the scratch directory: {args[0]!r}")

    sys.addaudithook(hook)


def die_with_parent() -> None:
    """Be killed when the worker that started us dies, so a killed worker leaves no orphan
    training on. The sandbox sets it before the child starts; set again after the user switch,
    which clears it."""
    processes.die_with_parent(signal.SIGKILL)
    if os.getppid() == 1:  # the parent died before the setting took effect
        os._exit(1)


def hide_shared_folders() -> list[str]:
    """Mount empty, small tmpfs over the folders every user may write to (in our own mount namespace).

    The sandbox's user can write nowhere else; with these hidden, a write that escapes the audit hook (C
    code opening files itself) lands in a private tmpfs that vanishes with the process.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    hidden = []
    for folder in WORLD_WRITABLE:
        if os.path.isdir(folder):
            flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
            if libc.mount(b"tmpfs", folder.encode(), b"tmpfs", flags, b"size=16m,mode=1777") != 0:
                raise OSError(ctypes.get_errno(), f"cannot mount a private tmpfs on {folder}")
            hidden.append(folder)
    return hidden


# The seccomp filter of `block_network`, by machine: the kernel's audit architecture, and the
# numbers of socket(2) and io_uring_setup(2) (io_uring can open and connect sockets by itself).
SECCOMP_ARCHES = {"x86_64": (0xC000003E, 41, 425), "aarch64": (0xC00000B7, 198, 425)}
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
AF_UNIX = 1


def block_network() -> bool:
    """Refuse every socket but a Unix one, and io_uring, with EACCES: a seccomp filter that holds
    where no network namespace can be made (a pod without CAP_SYS_ADMIN). False on a machine the
    filter does not know; the network namespace and the pod's NetworkPolicy still stand there."""
    arch = SECCOMP_ARCHES.get(platform.machine())
    if arch is None:
        return False
    audit_arch, socket_nr, io_uring_nr = arch
    load, jump_equal, jump_at_least, ret = 0x20, 0x15, 0x35, 0x06  # classic BPF: LD|W|ABS, JMP|JEQ|K, JMP|JGE|K, RET|K
    allow, refuse = 0x7FFF0000, 0x00050000 | errno.EACCES  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO
    program = [  # (code, jump if true, jump if false, k): jumps count the instructions skipped
        (load, 0, 0, 4),  # 0: seccomp_data.arch
        (jump_equal, 1, 0, audit_arch),  # 1
        (ret, 0, 0, refuse),  # 2: another ABI (32-bit calls on a 64-bit kernel)
        (load, 0, 0, 0),  # 3: seccomp_data.nr
        (jump_at_least, 5, 0, 0x40000000),  # 4: x32 calls carry this bit: refused
        (jump_equal, 4, 0, io_uring_nr),  # 5
        (jump_equal, 0, 2, socket_nr),  # 6: anything else is allowed
        (load, 0, 0, 16),  # 7: the low word of args[0], the socket's domain
        (jump_equal, 0, 1, AF_UNIX),  # 8
        (ret, 0, 0, allow),  # 9
        (ret, 0, 0, refuse),  # 10
    ]
    filters = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *op) for op in program))
    fprog = struct.pack("HL", len(program), ctypes.addressof(filters))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4  # the program's address is 64-bit
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "cannot set no_new_privs for the network filter")
    prog_buffer = ctypes.create_string_buffer(fprog)
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(prog_buffer), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "cannot install the seccomp network filter")
    return True


def enter_jail(scratch: Path, channel: Channel, mount_namespace: bool, uid: int) -> dict:
    """Drop to the sandbox's own ``uid`` and confine writes to ``scratch``; return what isolation
    was achieved.

    The working directory is the scratch from here on, and the child uses relative paths only:
    if the scratch lies under /tmp, its absolute path now names the private tmpfs instead.
    """
    isolation: dict = {}
    os.chdir(scratch)
    if mount_namespace and os.geteuid() == 0:
        isolation["private_folders"] = hide_shared_folders()
    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        isolation["uid"] = uid
    else:
        isolation["uid"] = os.geteuid()
        isolation["uid_note"] = "not root: cannot switch user; relying on the caller's user and the audit hook"
    isolation["network_filter"] = block_network()
    die_with_parent()
    install_audit_hook(os.getcwd(), channel)
    return isolation


def load_mixer(code: str, path: Path) -> type:
    """Execute the candidate as module ``candidate`` and return its ``Mixer`` class."""
    module = types.ModuleType("candidate")
    module.__file__ = str(path)
    exec(compile(code, str(path), "exec"), module.__dict__)
    mixer = module.__dict__.get("Mixer")
    if not isinstance(mixer, type):
        raise TypeError("the file defines no class Mixer")
    return mixer


def main() -> None:
    entered = time.time()  # wall clock, comparable with the parent's: it measures the process start
    imports_started = time.perf_counter()
    scratch, fd = Path(sys.argv[1]), int(sys.argv[2])
    request = json.loads((scratch / "request.json").read_text())
    set_limits(request["limits"])
    channel = Channel(fd)
    # Timed now, reported after the isolation event (the first event a caller sees).
    early_phases = {"process_start": entered - request["spawned_at"]}

    import torch

    from services.engineer import probes, profiles, train
    from services.engineer.baselines import baseline_code
    from services.engineer.data import load_split
    from services.engineer.model import LanguageModel, ModelConfig
    from services.researcher.novelty import functional_fingerprint  # computed here for untrusted code

    torch.set_num_threads(request["threads"])
    import kernels  # noqa: F401 - imported now, while its files are readable
    early_phases["imports"] = time.perf_counter() - imports_started
    warm_up_started = time.perf_counter()
    profile = profiles.get_profile(request["profile"]) if request.get("profile") else None
    budget_d, budget_h = (profile.d_model, profile.n_heads) if profile else (probes.PROBE_D_MODEL, probes.PROBE_HEADS)
    reference = load_mixer(baseline_code("deltanet"), scratch / "deltanet.py")
    reference_params = sum(p.numel() for p in reference(budget_d, budget_h).parameters())
    splits = None
    if request["mode"] == "experiment":
        splits = load_split(Path(request["train_path"])), load_split(Path(request["val_path"]))
    # Warm-up with the trusted reference: torch, einops and the kernels import what they import
    # lazily now, while the interpreter's own files are still readable.
    warm = LanguageModel(ModelConfig(300, 32, 1, 2), reference)
    with probes.CostCounter():
        loss, _ = warm(torch.randint(0, 300, (1, 8)), torch.randint(0, 300, (1, 8)))
    loss.backward()
    if request["mode"] == "experiment":
        warm_optimizer = train.AdamW([{"params": list(warm.parameters())}], lr=1e-3, betas=(0.9, 0.95))
        torch.nn.utils.clip_grad_norm_(warm.parameters(), 1.0)
        warm_optimizer.step()
        del warm_optimizer
        torch.save({"warm": warm.state_dict()}, io.BytesIO())
    del warm, loss
    early_phases["warm_up"] = time.perf_counter() - warm_up_started

    isolation = enter_jail(scratch, channel, request["mount_namespace"], request["uid"])
    isolation["network_isolated"] = request["network_isolated"]
    isolation["pid_namespace"] = request["pid_namespace"]
    # The host's pid (the caller's /proc names it so), not the namespace's 1; and the scratch, which
    # every process the sandbox starts has on its command line (how a caller finds what it left).
    isolation["pid"] = int(os.readlink("/proc/self"))
    isolation["scratch"] = str(scratch)
    channel.emit({"event": "isolation", **isolation})
    for name, seconds in early_phases.items():
        channel.emit({"event": "phase", "name": name, "seconds": seconds})

    stage, default_kind = "build", "build_error"
    try:
        with channel.phase("build"):
            code = Path(CANDIDATE_FILE).read_text()
            mixer_class = load_mixer(code, Path(CANDIDATE_FILE))
            mixer = mixer_class(probes.PROBE_D_MODEL, probes.PROBE_HEADS)
            params = sum(p.numel() for p in mixer_class(budget_d, budget_h).parameters())
        channel.emit({"event": "check", "name": "build", "result": {"ok": True}})
        default_kind = "runtime_error"
        for stage, run in (
            ("forward_backward", lambda: probes.check_forward_backward(mixer)),
            ("finite", lambda: probes.check_finite(mixer)),
            ("causal", lambda: {**probes.check_causal(mixer), "at_length": probes.check_causal_at_length(
                mixer_class(budget_d, budget_h), probes.training_length(profile), budget_d)}),
            ("complexity", lambda: probes.check_complexity(mixer, exempt=request["allow_quadratic"])),
            ("params", lambda: probes.check_params(params, reference_params, budget_d, budget_h)),
        ):
            with channel.phase(stage):
                result = run()
            channel.emit({"event": "check", "name": stage, "result": result})
        if request["mode"] == "check":
            stage = "fingerprint"
            channel.emit({"event": "result", "fingerprint": functional_fingerprint(code)})
            return
        stage = "train"
        torch.manual_seed(request["seed"])
        config = ModelConfig(profile.vocab_size, profile.d_model, profile.n_layers, profile.n_heads)
        model = LanguageModel(config, mixer_class).to(profile.device)

        def progress(report: dict) -> None:
            channel.emit({"event": "progress", **report})

        optimizer, stats, seconds = train.train(model, profile, request["seed"], splits[0], progress)
        stage = "evaluate"
        evaluation, eval_seconds = train.evaluate(model, profile, splits[1])
        for name, spent in {**seconds, **eval_seconds}.items():
            channel.emit({"event": "phase", "name": name, "seconds": spent})
        if not math.isfinite(evaluation["val_loss"]):
            raise FloatingPointError(f"validation loss is {evaluation['val_loss']}")
        stage = "checkpoint"
        # Written through a file object of ours, so a full disk surfaces as the OSError behind torch's error.
        with channel.phase("checkpoint"), open("checkpoint.pt", "wb") as checkpoint:
            torch.save({
                "code": code,
                "profile": profile.name,
                "seed": request["seed"],
                "model_config": config.__dict__,
                "step": profile.steps,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "val_loss": evaluation["val_loss"],
            }, checkpoint)
        channel.emit({"event": "result", "params": model.count_parameters(), **stats, **evaluation})
    except probes.ProbeFailure as failure:
        result = {**failure.result, "ok": False, "error": str(failure)}
        channel.emit({"event": "check", "name": stage, "result": result})
        channel.emit({"event": "failure", "kind": failure.kind, "message": str(failure), "traceback": ""})
    except SyntaxError as exc:
        channel.emit({"event": "failure", "kind": "syntax_error", "message": f"{exc.msg} (line {exc.lineno})",
                      "traceback": excerpt(exc)})
    except BaseException as exc:  # noqa: BLE001 - every candidate fault becomes a structured failure
        kind = classify(exc, default_kind, stage)
        if stage in ("build", "forward_backward", "finite", "causal", "complexity", "params"):
            error = f"{type(exc).__name__}: {exc}"[:500]
            channel.emit({"event": "check", "name": stage, "result": {"ok": False, "error": error}})
        # A full disk is named by its OSError: torch's own message for it says nothing of space.
        cause = os_error_behind(exc) if kind == "disk_full" else exc
        channel.emit({"event": "failure", "kind": kind, "message": f"{stage}: {type(cause).__name__}: {cause}"[:2000],
                      "traceback": excerpt(exc)})
