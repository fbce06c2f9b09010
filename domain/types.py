"""Field types shared by every record body: ids, countries, purposes, names."""

from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

from domain.countries import is_country
from domain.ids import ID_PATTERN


def _check_country(code: str) -> str:
    if not is_country(code):
        raise ValueError(f"{code!r} is not an ISO 3166-1 alpha-2 country code")
    return code


RecordId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
Country = Annotated[
    str, StringConstraints(min_length=2, max_length=2), AfterValidator(_check_country)
]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Text = Annotated[str, StringConstraints(max_length=2000)]
Authority = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}-[A-Z0-9][A-Z0-9-]{0,30}$")]


class Purpose(StrEnum):
    TRAINING = "training"
    FINE_TUNING = "fine_tuning"
    INFERENCE = "inference"
    SERVING = "serving"


class TransferMechanism(StrEnum):
    SECURITY_ASSESSMENT = "security_assessment"
    STANDARD_CONTRACT = "standard_contract"
    CERTIFICATION = "certification"


class Status(StrEnum):
    """Finding and posture statuses, in their order of gravity."""

    COMPLIANT = "compliant"
    ATTENTION = "attention"
    VIOLATION = "violation"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Status.COMPLIANT: 0, Status.ATTENTION: 1, Status.VIOLATION: 2}
