"""A ledger served by uvicorn on a free port, for the programs an outside party runs
(`chipledger witness`, docs/verify-it-yourself.py) to reach over real HTTP."""

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from api.app import create_app
from infra.bootstrap import Container

CHIPLEDGER = str(Path(sys.executable).parent / "chipledger")


@contextmanager
def served(container: Container) -> Iterator[str]:
    config = uvicorn.Config(create_app(container=container), host="127.0.0.1", port=0,
                            log_config=None, access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "the server did not start"
        thread.join(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def run(*args: str, api_key: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CHIPLEDGER_API_KEY": api_key, "CHIPLEDGER_LOG_LEVEL": "warning"}
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=120,
                          check=False)
