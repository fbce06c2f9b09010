"""A real `chipledger serve` for benches and tests: a free port, and a poll until it answers."""

import hashlib
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx


def signing_key_file(url: str) -> str:
    """Where a bench keeps the signing key of the ledger at `url`: the same file on every run,
    because a database accepts only the key it first saw (infra.checkpoint_store)."""
    folder = Path.home() / ".cache" / "chipledger-bench"
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / f"{hashlib.sha256(url.encode()).hexdigest()[:16]}.pem")


def free_port() -> int:
    """A port nobody listens on now, as the kernel picks it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _exited() -> str:
    return "the server exited"


def wait_ready(base: str, server: subprocess.Popen[bytes] | None = None, *,
               path: str = "/readyz", within: float = 60.0, timeout: float = 1.0,
               why_exited: Callable[[], str] = _exited) -> None:
    """Poll `base + path` until it answers 200. Raise if `server` exits first (saying
    `why_exited()`) or if `within` seconds pass."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if server is not None and server.poll() is not None:
            raise RuntimeError(why_exited())
        try:
            if httpx.get(base + path, timeout=timeout).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{base}{path} was not ready within {within} s")
