"""Field types shared by every record body and rule: ids, countries, purposes, names, and the
bounds of what the engine can hold.

Every date, number and text that enters the log passes through one of these types, so the
single appends, batches, imports and what-ifs all refuse the same things: a date past the
range the evaluator's date arithmetic stays within, a number that is not finite or cannot be
meant, a character no database or JSON reader should be handed.
"""

import re
import unicodedata
from datetime import date
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints
from pydantic_core import PydanticCustomError

from domain.countries import is_country
from domain.ids import ID_PATTERN

# Dates: a valid-time calendar wide enough for any regulation or contract, and far enough from
# date.min and date.max that the evaluator's day arithmetic (a day either side, interval ends)
# never leaves Python's calendar.
FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(2200, 12, 31)

# Measures (TPP, performance density, memory bandwidth in GB/s, thresholds on them): finite and
# positive, at most a billion, some 60,000 times a 2025 flagship accelerator's TPP.
MAX_MEASURE = 1e9
# Counts (chips, shipped quantities, data subjects, rule minimums): whole and positive, at most
# a trillion, more than the world's population a hundred times over, and exact as a double.
MAX_COUNT = 10**12

MAX_NAME_LENGTH = 200
MAX_TEXT_LENGTH = 2000
MAX_COUNTRIES = 250  # ISO 3166-1 has 249 codes
MAX_MODELS = 100

# Characters no text may hold: C0 and C1 control characters (NUL among them), DEL, the line
# and paragraph separators that JavaScript and str.splitlines take for line breaks, and lone
# surrogates (not characters at all: they cannot be encoded in UTF-8). Free text (a reason, a
# description) keeps tab, line feed and carriage return; ids and names keep none of them.
_NOT_IN_A_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_NOT_IN_FREE_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


_KINDS = {"Cs": "a lone surrogate", "Zl": "a line separator", "Zp": "a paragraph separator"}


def _refuse_characters(pattern: re.Pattern[str], where: str) -> AfterValidator:
    def check(value: str) -> str:
        found = pattern.search(value)
        if found is None:
            return value
        kind = _KINDS.get(unicodedata.category(found.group()), "a control character")
        raise PydanticCustomError(
            "control_character",
            "U+{code} ({kind}) at position {at} is not allowed in {where}",
            {"code": f"{ord(found.group()):04X}", "kind": kind, "at": found.start(),
             "where": where})

    return AfterValidator(check)


def _check_country(code: str) -> str:
    if not is_country(code):
        raise ValueError(f"{code!r} is not an ISO 3166-1 alpha-2 country code")
    return code


Day = Annotated[date, Field(ge=FIRST_DAY, le=LAST_DAY)]
Measure = Annotated[float, Field(gt=0, le=MAX_MEASURE, allow_inf_nan=False)]
Count = Annotated[int, Field(gt=0, le=MAX_COUNT)]

RecordId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
Country = Annotated[
    str, StringConstraints(min_length=2, max_length=2), AfterValidator(_check_country)
]
Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NAME_LENGTH),
    _refuse_characters(_NOT_IN_A_LINE, "a name"),
]
Text = Annotated[
    str, StringConstraints(max_length=MAX_TEXT_LENGTH),
    _refuse_characters(_NOT_IN_FREE_TEXT, "free text (tab, line feed and carriage return are)"),
]
Url = Annotated[
    str, StringConstraints(min_length=8, max_length=MAX_TEXT_LENGTH),
    _refuse_characters(_NOT_IN_A_LINE, "a URL"),
]
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
