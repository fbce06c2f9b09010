"""What the services below the composition root use of it, as protocols: infra.bootstrap's
Container has all of it, and a service names only what it reads (not the whole container)."""

from typing import Protocol

from infra.alarms import Alarms
from infra.lead import Backend
from infra.settings import Settings
from infra.store import LogStore


class DatabaseNeeds(Protocol):
    """The sealed log, the alarms and what the backend offers processes sharing it."""

    @property
    def store(self) -> LogStore: ...
    @property
    def alarms(self) -> Alarms: ...
    @property
    def backend(self) -> Backend: ...


class SigningNeeds(DatabaseNeeds, Protocol):
    """The database's, and the settings that say where the key is and when to sign."""

    @property
    def settings(self) -> Settings: ...
