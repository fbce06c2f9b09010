"""Domain errors. Each names what the client did wrong in words a compliance officer can read."""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FieldProblem:
    """One bad field: where it is (a JSON path as a list) and what is wrong with it."""

    loc: tuple[str | int, ...]
    msg: str
    type: str = "value_error"


class LedgerError(Exception):
    """Base of every error the Ledger raises on purpose."""


@dataclass
class InvalidRecordError(LedgerError):
    """The request is well-formed but breaks a domain rule (dates, references, lifecycle)."""

    problems: list[FieldProblem] = field(default_factory=list)

    def __str__(self) -> str:
        return "; ".join(f"{'.'.join(map(str, p.loc))}: {p.msg}" for p in self.problems)


@dataclass
class RecordNotFoundError(LedgerError):
    kind: str
    record_id: str

    def __str__(self) -> str:
        return f"no {self.kind} with id {self.record_id!r}"


@dataclass
class RecordConflictError(LedgerError):
    """A create names an id that already exists with different content."""

    kind: str
    record_id: str

    def __str__(self) -> str:
        return f"{self.kind} {self.record_id!r} already exists with different content"


@dataclass
class VersionMismatchError(LedgerError):
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
