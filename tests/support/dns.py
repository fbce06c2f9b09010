"""A resolver for tests: this machine has no DNS, so names are answered from a table the test
sets and changes (a name can move, as in DNS rebinding); it remembers what it was asked."""

import socket
from ipaddress import ip_address

from infra.webhook_targets import IPAddress


class Dns:
    def __init__(self, table: dict[str, list[str]] | None = None) -> None:
        self.table = dict(table or {})
        self.asked: list[str] = []

    def resolve(self, host: str, port: int) -> list[IPAddress]:
        self.asked.append(host)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [ip_address(a) for a in self.table[host]]
