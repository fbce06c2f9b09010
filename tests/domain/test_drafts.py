"""Drafts (the bulk path) store exactly what the aggregates would, and load back as them."""

import json
import re
from datetime import date
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from domain.application import Append, Ledger
from domain.errors import InvalidRecordError
from domain.kinds import KINDS, Role
from domain.records import LoggedEvent, fold
from tests.support.data import ALIBABA, DC_JOHOR, H100
from tests.support.histories import FAST, KIND_FIELDS, commands

# The strategies name these ids in any reference field: each exists as every kind named.
IDS = ["nvidia-h100", "nvidia-h20", "johor-dc1", "sg-dc2", "alibaba-sg", "x"]
REFERENCED = [
    *[("chip_model", {**H100, "id": i}) for i in IDS],
    *[("firm", {**ALIBABA, "id": i}) for i in IDS],
    *[("data_centre", {**DC_JOHOR, "id": i}) for i in IDS],
]


def ledger() -> Ledger:
    return Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})


def append(kind: str, role: Role, data: dict[str, Any], record_id: str | None = None) -> Append:
    body = KINDS[kind].bodies[role].model_validate_json(json.dumps(data))
    return Append(kind, role, body, record_id)


def without_timestamp(state: bytes) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(state)
    assert decoded.pop("timestamp")["_type_"] == "datetime_iso"
    return decoded


# The one part of a stored state that differs between two runs: the event's own clock.
TIMESTAMP = re.compile(rb'^\{"timestamp":\{"_type_":"datetime_iso","_data_":"[^"]+"\}')


def log_of(app: Ledger) -> list[tuple[Any, ...]]:
    """The stored events byte for byte, but for their timestamps."""
    logged = []
    for n in app.recorder.select_notifications(1, limit=1000):
        without_timestamp(n.state)  # there is one, of the library's type
        state, found = TIMESTAMP.subn(b"", n.state)
        assert found == 1
        logged.append((n.originator_id, n.originator_version, n.topic, state))
    return logged


def setup() -> list[Append]:
    return [append(k, Role.CREATE, data) for k, data in REFERENCED]


def accepted_one_by_one(kind: str, later: list[tuple[Role, dict[str, Any]]]) -> list[Append]:
    """The appends the aggregates accept when each is committed on its own."""
    app, accepted = ledger(), []
    app.commit(app.stage(setup()))
    for role, data, record_id in [(Role.CREATE, {"id": "r1", **KIND_FIELDS[kind][0]}, None),
                                  *[(role, data, "r1") for role, data in later]]:
        try:
            item = append(kind, role, data, record_id)
            app.commit(app.stage([item]))
        except (ValidationError, InvalidRecordError):
            continue  # the strategies draw some bodies the API or the record refuses
        accepted.append(item)
    return accepted


@FAST
@given(st.sampled_from(sorted(KIND_FIELDS)).flatmap(
    lambda kind: st.tuples(st.just(kind), commands(kind))))
def test_a_batch_staged_as_drafts_stores_what_the_aggregates_store(
    drawn: tuple[str, list[tuple[Role, dict[str, Any]]]],
):
    kind, later = drawn
    accepted = accepted_one_by_one(kind, later)

    # The same accepted appends, through the aggregates and as drafts, one batch each.
    by_aggregates, by_drafts = ledger(), ledger()
    for app, drafts in ((by_aggregates, False), (by_drafts, True)):
        app.commit(app.stage(setup(), drafts=drafts))
        app.commit(app.stage(accepted, drafts=drafts))

    # The log cannot tell which path wrote it.
    assert log_of(by_drafts) == log_of(by_aggregates)

    # The library loads the drafts' events as the record the fold gives.
    record = by_drafts.get_record(kind, "r1")
    events = [LoggedEvent(t.split(".")[-1], without_timestamp(s)["data"])
              for t, s in ((n.topic, n.state) for n in
                           by_drafts.recorder.select_events(record.id))]
    assert record.state == fold(kind, "r1", events)
    assert record.version == len(accepted)


def test_drafts_follow_records_already_in_the_log():
    app = ledger()
    app.commit(app.stage(setup()))
    lease = {"id": "l1", **KIND_FIELDS["lease"][0]}
    app.commit(app.stage([append("lease", Role.CREATE, lease)]))

    # A later batch, as drafts, amends the stored lease and repeats its create unchanged.
    staged = app.stage([
        append("lease", Role.CHANGE, {"effective_from": "2025-06-01", "chip_count": 4096}, "l1"),
        append("lease", Role.CREATE, lease),
    ], drafts=True)
    assert [(o.version, o.appended) for o in staged.outcomes] == [(2, True), (1, False)]
    app.commit(staged)
    assert app.get_record("lease", "l1").state.facts_on(date(2025, 7, 1))["chip_count"] == 4096
