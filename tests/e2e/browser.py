"""Real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright's library; never a
downloaded browser) against the real app served by uvicorn on a free port."""

import contextlib
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from api.app import create_app
from infra.bootstrap import Container

CHROMIUM = Path("/usr/bin/chromium")


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM.exists() and not shutil.which("chromium"):
        return ("browser tests need Debian's chromium (apt-get install -y chromium "
                "chromium-driver; .ci/run installs it)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "browser tests need the playwright library (pip install -e '.[dev]')"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serving(container: Container) -> Iterator[str]:
    """The app on a free port in a thread of this process, until the block ends."""
    port = _free_port()
    config = uvicorn.Config(create_app(container=container), host="127.0.0.1", port=port,
                            log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="workbench-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "the server exited"
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@dataclass
class Watch:
    """What a page did that it must not: console errors, script errors, dialogs, and requests
    to anywhere but the server."""

    base: str
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        page.on("console", lambda m: self.console_errors.append(m.text)
                if m.type == "error" else None)
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        page.on("request", lambda r: self.requests.append(r.url))

        def dialog(d: Any) -> None:
            self.dialogs.append(d.message)
            d.dismiss()

        page.on("dialog", dialog)

    @property
    def outside(self) -> list[str]:
        return [u for u in self.requests if not u.startswith(self.base + "/")]
