"""A TCP forwarder for outage tests: it sits between the app and a database server, and a test
can pause it (connections are accepted and bytes taken in, but nothing is forwarded, as on a
network that went silent) or kill it (every connection cut, nothing listening) and then bring
it back on the same port."""

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any

from bench.serving import free_port

CHUNK = 65536


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="tcp-proxy",
                                       daemon=True)
        self.flowing = asyncio.Event()
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    # what a test calls, from its own thread ----------------------------------------------------

    def start(self) -> int:
        """Listen on a free port of 127.0.0.1 (the same one again after a kill)."""
        if not self.thread.is_alive():
            self.thread.start()
            self._call(self._set_flowing(True))
        if not self.port:
            self.port = free_port()
        self._call(self._listen())
        return self.port

    def pause(self) -> None:
        self._call(self._set_flowing(False))

    def resume(self) -> None:
        self._call(self._set_flowing(True))

    def kill(self) -> None:
        """Stop listening and cut every connection, as a crashed proxy or host would."""
        self._call(self._kill())

    def close(self) -> None:
        if self.thread.is_alive():
            self.kill()
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)

    def _call(self, work: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout=10)

    # on the proxy's loop -----------------------------------------------------------------------

    async def _set_flowing(self, flowing: bool) -> None:
        if flowing:
            self.flowing.set()
        else:
            self.flowing.clear()

    async def _listen(self) -> None:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", self.port,
                                                 reuse_address=True)

    async def _kill(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for writer in list(self.writers):
            writer.transport.abort()
        self.writers.clear()

    async def _accept(self, client_in: asyncio.StreamReader,
                      client_out: asyncio.StreamWriter) -> None:
        self.writers.add(client_out)
        await self.flowing.wait()  # paused: the connection is accepted and left hanging
        try:
            server_in, server_out = await asyncio.open_connection(*self.target)
        except OSError:
            client_out.transport.abort()
            return
        self.writers.add(server_out)
        await asyncio.gather(self._pump(client_in, server_out),
                             self._pump(server_in, client_out), return_exceptions=True)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(CHUNK):
                await self.flowing.wait()  # paused: what was read is held, not sent
                sink.write(data)
                await sink.drain()
        finally:
            self.writers.discard(sink)
            sink.close()
