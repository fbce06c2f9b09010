"""One projection runner per database: the lead of a projection, which a runner takes or, when
another process has it, waits on; and the `Backend`, what each database offers processes that
share it (its lead, its wake-ups, where files beside it go). Each backend's are in its folder
(infra.postgres.backend: an advisory lock and LISTEN; infra.sqlite.backend: a lock file and
polling); infra.bootstrap chooses one.
"""

import threading
from pathlib import Path
from typing import Protocol


class Lead(Protocol):
    def take(self) -> bool:
        """Take the lead if no one holds it; True while this one does."""
        ...

    def release(self) -> None: ...


class Waiter(Protocol):
    """How a running runner holds its lead and sleeps until the log may have moved."""

    def lead(self) -> bool: ...
    def wait(self, stop: threading.Event) -> None: ...
    def close(self) -> None: ...


class Backend(Protocol):
    name: str  # "sqlite" or "postgres", as Settings.backend says

    def lead(self, projection: str) -> Lead:
        """The lead of a projection on this database, not yet taken."""
        ...

    def waiter(self, projection: str, poll_interval: float) -> Waiter: ...

    def signing_key_path(self) -> Path:
        """Where the signing key is kept when no file is configured."""
        ...

    def library_env(self) -> dict[str, str]:
        """The eventsourcing library's environment for this database."""
        ...

    def probe(self) -> None:
        """Raise, saying why, if the database cannot be reached at all."""
        ...

    def where(self) -> str:
        """The database, for messages: never its password."""
        ...

    def cannot_open(self, reason: str) -> str:
        """The one line saying that opening the database failed, and what to check."""
        ...


class UnreachableError(Exception):
    """The database cannot be reached; str() is the one line saying why and what to check."""


def first_line(error: BaseException) -> str:
    """An error's message on one line, or its class's name when it has none."""
    text = " ".join(str(error).split("\n", 1)[0].split())
    return text or type(error).__name__
