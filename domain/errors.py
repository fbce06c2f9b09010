"""Domain errors. Each names what the client did wrong in words a compliance officer can read."""

from dataclasses import dataclass, field
from typing import ClassVar


@dataclass(frozen=True)
class FieldProblem:
    """One bad field: where it is (a JSON path as a list) and what is wrong with it."""

    loc: tuple[str | int, ...]
    msg: str
    type: str = "value_error"


class LedgerError(Exception):
    """Base of every error the ledger raises on purpose. Each is one of the five kinds below,
    which the entry points map to an answer (api/errors.py: one table, keyed by kind)."""

    # How the answer names it, when it is more specific than its kind's ("Conflict").
    title: ClassVar[str | None] = None
    # Seconds after which the same request may succeed, when waiting is the remedy.
    retry_after: ClassVar[int | None] = None


class NotFound(LedgerError):  # noqa: N818 - the kinds are named as the answers they give
    """What the request names does not exist (as known at the moment asked about)."""


class Conflict(LedgerError):  # noqa: N818
    """The request contradicts what is recorded, or lost a race with another."""


class Precondition(LedgerError):  # noqa: N818
    """A condition the client set (If-Match) does not hold."""


class Invalid(LedgerError):  # noqa: N818
    """The request is well-formed but refused: each problem names its field."""

    where: ClassVar[tuple[str | int, ...]] = ("body",)  # what the problems' locs are within

    @property
    def field_problems(self) -> list[FieldProblem]:
        return []


class Unavailable(LedgerError):  # noqa: N818
    """The ledger cannot answer now; the same request may succeed later."""


@dataclass
class InvalidRecordError(Invalid):
    """The request is well-formed but breaks a domain rule (dates, references, lifecycle)."""

    problems: list[FieldProblem] = field(default_factory=list)

    @property
    def field_problems(self) -> list[FieldProblem]:
        return self.problems

    def __str__(self) -> str:
        return "; ".join(f"{'.'.join(map(str, p.loc))}: {p.msg}" for p in self.problems)


@dataclass
class RecordNotFoundError(NotFound):
    kind: str
    record_id: str

    def __str__(self) -> str:
        return f"no {self.kind} with id {self.record_id!r}"


@dataclass
class RecordConflictError(Conflict):
    """A create names an id that already exists with different content."""

    kind: str
    record_id: str

    def __str__(self) -> str:
        return f"{self.kind} {self.record_id!r} already exists with different content"


@dataclass
class VersionMismatchError(Precondition):
    """An `If-Match` precondition failed: the record moved on."""

    kind: str
    record_id: str
    expected: int
    actual: int

    def __str__(self) -> str:
        return (
            f"{self.kind} {self.record_id!r} is at version {self.actual}, "
            f"not {self.expected}"
        )
