"""Properties of folding: what order may and may not change a record's facts."""

from datetime import date, timedelta
from typing import Any

from hypothesis import event, given
from hypothesis import strategies as st

from domain.aggregates import AGGREGATES
from domain.errors import InvalidRecordError
from domain.kinds import KINDS, Role
from domain.records import LoggedEvent, RecordState, fold
from tests.support.histories import (
    CHANGE,
    CORRECT,
    CREATE,
    FAST,
    KIND_FIELDS,
    PATCH,
    START,
    commands,
    days,
)


def facts_over_time(state: RecordState) -> list[dict[str, Any]]:
    """The facts on every day where they could differ, and the days either side."""
    probe = {START - timedelta(days=1), START}
    for day in state.change_dates():
        probe |= {day - timedelta(days=1), day, day + timedelta(days=1)}
    return [state.facts_on(day) for day in sorted(probe)]


def create(kind: str) -> LoggedEvent:
    return LoggedEvent(CREATE[kind], KIND_FIELDS[kind][0])


def change(kind: str, on: date, fields: dict[str, Any]) -> LoggedEvent:
    return LoggedEvent(CHANGE[kind], {"effective_from": on.isoformat(), **fields})


# (a) corrections of different fields commute ---------------------------------------------------


@st.composite
def corrections_of_different_fields(draw: st.DrawFn) -> tuple[str, list[dict[str, Any]]]:
    """A kind, and corrections that each name fields no other one names.

    An activity's data_centre_id and location_country are one fact (where it runs): naming
    either clears the other, so the later of two such corrections wins. At most one of them
    is drawn here."""
    kind = draw(st.sampled_from(sorted(KIND_FIELDS)))
    fields = dict(KIND_FIELDS[kind][1])
    if kind == "processing_activity":
        del fields[draw(st.sampled_from(["data_centre_id", "location_country"]))]
    names = draw(st.lists(st.sampled_from(sorted(fields)), min_size=1, unique=True))
    groups = draw(st.lists(st.integers(0, len(names) - 1), min_size=len(names),
                           max_size=len(names)))
    corrections: dict[int, dict[str, Any]] = {}
    for name, group in zip(names, groups, strict=True):
        corrections.setdefault(group, {})[name] = draw(fields[name])
    return kind, list(corrections.values())


@FAST
@given(corrections_of_different_fields(), st.data())
def test_the_order_of_corrections_of_different_fields_does_not_change_the_facts(
    drawn: tuple[str, list[dict[str, Any]]], data: st.DataObject
):
    kind, corrections = drawn
    changes = data.draw(st.lists(st.tuples(days, PATCH[kind]), max_size=3))
    reordered = data.draw(st.permutations(corrections))

    def facts(order: list[dict[str, Any]]) -> list[dict[str, Any]]:
        events = [create(kind), *(LoggedEvent(CORRECT[kind], c) for c in order),
                  *(change(kind, on, fields) for on, fields in changes)]
        return facts_over_time(fold(kind, "r", events))

    assert facts(reordered) == facts(corrections)


def test_the_later_of_two_location_corrections_wins():
    # Why (a) draws at most one of an activity's two location fields.
    first = LoggedEvent("ProcessingCorrected", {"location_country": "CN"})
    second = LoggedEvent("ProcessingCorrected", {"data_centre_id": "sg-dc2"})
    one = fold("processing_activity", "r", [create("processing_activity"), first, second])
    other = fold("processing_activity", "r", [create("processing_activity"), second, first])
    assert one.facts_on(START)["data_centre_id"] == "sg-dc2"
    assert other.facts_on(START)["location_country"] == "CN"


# (b) changes on distinct dates commute ---------------------------------------------------------


@st.composite
def changes_on_distinct_days(draw: st.DrawFn, kind: str) -> list[tuple[date, dict[str, Any]]]:
    on = draw(st.lists(days, min_size=1, max_size=6, unique=True))
    return [(day, draw(PATCH[kind])) for day in on]


@FAST
@given(st.sampled_from(sorted(KIND_FIELDS)).flatmap(
    lambda kind: st.tuples(st.just(kind), changes_on_distinct_days(kind))), st.data())
def test_the_order_changes_on_distinct_days_were_recorded_does_not_change_the_facts(
    drawn: tuple[str, list[tuple[date, dict[str, Any]]]], data: st.DataObject
):
    kind, changes = drawn
    reordered = data.draw(st.permutations(changes))

    def facts(order: list[tuple[date, dict[str, Any]]]) -> list[dict[str, Any]]:
        events = [create(kind), *(change(kind, on, fields) for on, fields in order)]
        return facts_over_time(fold(kind, "r", events))

    assert facts(reordered) == facts(changes)


@FAST
@given(st.sampled_from(sorted(KIND_FIELDS)).flatmap(
    lambda kind: st.tuples(st.just(kind), changes_on_distinct_days(kind),
                           st.lists(PATCH[kind], max_size=3))), st.data())
def test_where_corrections_fall_among_changes_does_not_change_the_facts(
    drawn: tuple[str, list[tuple[date, dict[str, Any]]], list[dict[str, Any]]],
    data: st.DataObject,
):
    """Only the order among corrections matters, and among changes on the same day."""
    kind, changes, corrections = drawn
    change_events = [change(kind, on, fields) for on, fields in changes]
    correction_events = [LoggedEvent(CORRECT[kind], c) for c in corrections]
    # Keep corrections in their order, and changes in theirs; shuffle where each kind falls.
    is_correction = data.draw(st.permutations([True] * len(corrections)
                                              + [False] * len(changes)))
    pending = {True: iter(correction_events), False: iter(change_events)}
    interleaved = [next(pending[flag]) for flag in is_correction]

    def facts(events: list[LoggedEvent]) -> list[dict[str, Any]]:
        return facts_over_time(fold(kind, "r", [create(kind), *events]))

    assert facts(interleaved) == facts(change_events + correction_events)


# (c) the aggregate folds as records.fold does (commands: tests/support/histories.py) ------------


@FAST
@given(st.sampled_from(sorted(KIND_FIELDS)).flatmap(
    lambda kind: st.tuples(st.just(kind), commands(kind))))
def test_an_aggregate_holds_the_state_records_fold_gives_for_its_events(
    drawn: tuple[str, list[tuple[Role, dict[str, Any]]]],
):
    kind, later = drawn
    spec = KINDS[kind]
    aggregate = AGGREGATES[kind].open("r1", dict(KIND_FIELDS[kind][0]))
    accepted = [(spec.events[Role.CREATE], dict(KIND_FIELDS[kind][0]))]
    for role, data in later:
        try:
            aggregate.record(role, dict(data))
        except InvalidRecordError:
            continue
        accepted.append((spec.events[role], data))
    event(f"{len(accepted) - 1} of {len(later)} accepted")

    from_sequence = fold(kind, "r1", [LoggedEvent(t, d) for t, d in accepted])
    assert aggregate.state == from_sequence
    assert aggregate.version == from_sequence.version == len(accepted)

    events = aggregate.collect_events()
    assert [(type(e).__name__, e.data) for e in events] == accepted
    assert fold(kind, "r1", [LoggedEvent(type(e).__name__, e.data) for e in events]) == (
        from_sequence)

    # Replayed by the library, as the repository does, the events give the same state.
    replayed = None
    for stored in events:
        replayed = stored.mutate(replayed)
    assert replayed is not None
    assert replayed.state == from_sequence

    # The read side, folding with log positions, gets the same record and its evidence.
    logged = [LoggedEvent(t, d, position) for position, (t, d) in enumerate(accepted, start=7)]
    with_positions = fold(kind, "r1", logged)
    assert list(with_positions.positions) == list(range(7, 7 + len(accepted)))
    assert with_positions.original == from_sequence.original
    assert with_positions.changes == from_sequence.changes

    # What the write side accepted, the read side folds without contradiction.
    for facts in facts_over_time(from_sequence):
        if kind == "processing_activity":
            assert (facts["data_centre_id"] is None) != (facts["location_country"] is None)
        if facts.get("ends_on") is not None:
            assert facts["ends_on"] >= facts["starts_on"]
