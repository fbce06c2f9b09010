"""Receivers that misbehave at the socket: one that accepts and never answers (a tarpit),
one that closes every connection it accepts. Real sockets on 127.0.0.1."""

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress


class SocketReceiver:
    """Accepts connections on 127.0.0.1 in a thread; `hold` keeps them open unanswered,
    otherwise each is read from and closed."""

    def __init__(self, hold: bool) -> None:
        self.hold = hold
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.held: list[socket.socket] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed
            with self.lock:
                self.accepted += 1
                if self.hold:
                    self.held.append(conn)
                    continue
            with suppress(OSError):
                conn.recv(65536)
            conn.close()

    def open_connections(self) -> int:
        with self.lock:
            return len(self.held)

    def close(self) -> None:
        self.sock.close()
        with self.lock:
            for conn in self.held:
                conn.close()
            self.held = []


@contextmanager
def socket_receiver(hold: bool) -> Iterator[SocketReceiver]:
    built = SocketReceiver(hold)
    try:
        yield built
    finally:
        built.close()
