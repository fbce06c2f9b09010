"""Random histories of leases and processing activities, for property tests: patches of the
fields a correction or change may name, and later commands some of which invariants refuse."""

from datetime import date, timedelta
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st

from domain.kinds import KINDS, Role
from tests.support.data import ACTIVITY_STARTED, LEASE_SIGNED

FAST = settings(max_examples=100, deadline=None)

START = date(2025, 4, 1)
# The drawn days run from START for 270 days: the lease outlasts them all, and the activity
# starts with them.
LEASE = {**LEASE_SIGNED, "ends_on": "2025-12-31"}
ACTIVITY = {**ACTIVITY_STARTED, "starts_on": START.isoformat()}

days = st.integers(min_value=0, max_value=270).map(lambda n: START + timedelta(days=n))
chip_counts = st.integers(min_value=1, max_value=100_000)
purposes = st.lists(st.sampled_from(["training", "fine_tuning", "inference", "serving"]),
                    min_size=1, max_size=4, unique=True)
ids = st.sampled_from(["nvidia-h100", "nvidia-h20", "johor-dc1", "sg-dc2", "alibaba-sg", "x"])
countries = st.sampled_from(["CN", "SG", "MY", "HK", "US"])

# The fields of each kind a patch may name, each with a strategy for its JSON value.
LEASE_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "chip_count": chip_counts,
    "chip_model": ids,
    "data_centre_id": ids,
    "firm_id": ids,
    "purposes": purposes,
    "ends_on": days.map(date.isoformat),
}
ACTIVITY_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "purpose": st.sampled_from(["training", "fine_tuning", "inference"]),
    "data_subject_countries": st.lists(countries, min_size=1, max_size=3, unique=True),
    "sensitive": st.booleans(),
    "subject_count": st.none() | chip_counts,
    "transfer_mechanism": st.sampled_from([None, "security_assessment", "standard_contract"]),
    "data_centre_id": ids,
    "location_country": countries,
}
KIND_FIELDS = {"lease": (LEASE, LEASE_FIELDS), "processing_activity": (ACTIVITY, ACTIVITY_FIELDS)}
CREATE = {"lease": "LeaseSigned", "processing_activity": "ProcessingStarted"}
CORRECT = {"lease": "LeaseCorrected", "processing_activity": "ProcessingCorrected"}
CHANGE = {"lease": "LeaseAmended", "processing_activity": "ProcessingChanged"}


# A patch names at least one of the fields, with a value for each.
PATCH = {kind: st.fixed_dictionaries({}, optional=fields).filter(bool)
         for kind, (_, fields) in KIND_FIELDS.items()}

ROLES = st.sampled_from([Role.CORRECT, Role.CHANGE, Role.CHANGE, Role.DILIGENCE, Role.END])


@st.composite
def commands(draw: st.DrawFn, kind: str) -> list[tuple[Role, dict[str, Any]]]:
    """Later events for a record of `kind`, some of which its invariants will refuse."""
    spec = KINDS[kind]
    result = []
    for _ in range(draw(st.integers(0, 8))):
        role = draw(ROLES.filter(lambda r: r in spec.events))
        if role is Role.CORRECT:
            data = {**draw(PATCH[kind]), **draw(st.sampled_from([{}, {"reason": "typo"}]))}
        elif role is Role.CHANGE:
            data = {"effective_from": draw(days).isoformat(), **draw(PATCH[kind])}
        elif role is Role.END:
            data = {"effective_from": draw(days).isoformat()}
        else:
            data = {"completed_on": draw(days).isoformat(), "reference": "DD"}
        result.append((role, data))
    return result
