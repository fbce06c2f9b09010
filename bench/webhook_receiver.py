"""The bench's fast local receiver, in a process of its own (so that it does not share the
dispatcher's interpreter): a minimal HTTP/1.1 server on asyncio streams that answers 200 to
every POST on kept-alive connections and notes each webhook-id's arrival time."""

import asyncio
import json
import multiprocessing
import re
import socket
import time
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)
_ID = re.compile(rb"webhook-id:\s*(\S+)", re.IGNORECASE)
_OK = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"


def serve(ports: Any, count: "Synchronized[int]", stop: Any, out: str) -> None:
    arrivals: list[tuple[str, float]] = []
    sock = socket.create_server(("127.0.0.1", 0), backlog=512)
    ports.put(sock.getsockname()[1])

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = _LENGTH.search(head)
                await reader.readexactly(int(length.group(1)) if length else 0)
                found = _ID.search(head)
                arrivals.append((found.group(1).decode() if found else "", time.time()))
                count.value += 1
                writer.write(_OK)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, sock=sock)
        async with server:
            while not stop.is_set():
                await asyncio.sleep(0.05)

    asyncio.run(main())
    Path(out).write_text(json.dumps(arrivals))


class FastReceiver:
    def __init__(self, out: Path) -> None:
        spawn = multiprocessing.get_context("spawn")  # nothing of this process's threads
        self.out = out
        self.count: Synchronized[int] = spawn.Value("q", 0, lock=False)  # type: ignore[assignment]
        self.stop = spawn.Event()
        ports = spawn.Queue()
        self.process = spawn.Process(target=serve, args=(ports, self.count, self.stop, str(out)),
                                     daemon=True)
        self.process.start()
        self.port: int = ports.get(timeout=30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def arrivals(self) -> dict[str, float]:
        """Stop the receiver; the first arrival time of each webhook-id."""
        self.stop.set()
        self.process.join(timeout=30)
        first: dict[str, float] = {}
        for message_id, at in json.loads(self.out.read_text()):
            first.setdefault(message_id, at)
        return first
