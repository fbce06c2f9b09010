"""A replay's fast fold (raw pages, orjson, World.fold) builds the World that applying every
sealed entry as a LoggedEvent builds, on both backends, whole or cut at any position, and on a
damaged log too."""

import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.synthetic import ledger
from domain.kinds import ALL_KINDS, KINDS
from domain.records import LoggedEvent
from domain.world import World
from infra.bootstrap import Container, bootstrap
from infra.replay import decode_state, replay_world
from infra.settings import Settings
from tests.support.logs import append_in_commits, tamper


def applied_entry_by_entry(container: Container, upto: int) -> tuple[World, int]:
    """The World as built before replays read raw pages: a LoggedEvent per sealed entry."""
    world, count = World(), 0
    for entry in container.store.iter_entries(batch=50):
        if entry.position > upto:
            break
        world.apply(entry.kind, entry.record_id,
                    LoggedEvent(entry.type, entry.data, entry.position))
        count += 1
    return world, count


def snapshot(world: World) -> dict[str, Any]:
    """Everything the evaluator can read of a World."""
    firms = [state.record_id for state in world.of_kind("firm")]
    return {
        "position": world.position,
        "regulation_stamp": world.regulation_stamp,
        "records": {kind: {s.record_id: s for s in world.of_kind(kind)} for kind in KINDS},
        "subjects": world.subjects(),
        "by_firm": {f: (world.subjects_of_firm(f), [s.record_id for s in
                                                      world.licences_held_by(f)],
                        world.descendants(f)) for f in firms},
    }


def assert_replays_as_applied(container: Container, positions: list[int]) -> None:
    for upto, page in itertools.product(positions, (7, 5000)):
        replayed, count = replay_world(container.store, upto, batch=page)
        applied, expected = applied_entry_by_entry(container, upto)
        assert count == expected, (upto, page)
        assert snapshot(replayed) == snapshot(applied), (upto, page)


def test_a_replay_folds_the_world_that_applying_each_entry_builds(database_url: str) -> None:
    """Commits of 1 to 40 events, replayed in pages of 7 and of 5000 up to positions inside a
    page, at its edge and past the head; then with a seal gone (a gap to step over) and with
    two seals' events swapped (ids out of step with positions: paired by the join)."""
    container = bootstrap(Settings(database_url=database_url))
    try:
        append_in_commits(container, list(ledger(400)))
        head = container.store.head()
        assert head is not None
        assert head.position > 100
        positions = [0, 1, 7, 30, 31, 64, head.position - 1, head.position, head.position + 5]
        assert_replays_as_applied(container, positions)

        d = container.store.dialect
        tamper(database_url, f"DELETE FROM {d.seals_table} WHERE position = 30")
        assert_replays_as_applied(container, positions)
        with d.transaction(commit=False) as cursor:
            cursor.execute(d.sql(f"SELECT position, notification_id FROM {d.seals_table} "
                                 "WHERE position IN (8, 80)"))
            ids = {row["position"]: row["notification_id"] for row in cursor.fetchall()}
        for position, notification_id in ((8, -1), (80, ids[8]), (8, ids[80])):
            tamper(database_url, f"UPDATE {d.seals_table} SET notification_id = "
                    f"{notification_id} WHERE position = {position}")
        assert_replays_as_applied(container, positions)
    finally:
        container.close()


# What the library's transcoder writes: json.dumps without ASCII escapes, as UTF-8. NaN is left
# out only because it never equals itself; infinities (which orjson refuses) are in.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(st.characters(exclude_categories=("Cs",))),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(st.characters(exclude_categories=("Cs",)), max_size=8), inner,
                      max_size=4),
    max_leaves=12,
)


@settings(max_examples=500, deadline=None)
@given(value=json_values)
def test_a_state_decodes_as_json_loads_reads_it(value: Any) -> None:
    state = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf8")
    assert repr(decode_state(state)) == repr(json.loads(state))  # 2**64 == 2.0**64: compare types


@pytest.mark.parametrize("number", [2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63),
                                    -(2**63) - 1, -(10**19) + 1, 10**30 + 1])
def test_integers_at_and_beyond_64_bits_decode_exactly(number: int) -> None:
    state = json.dumps({"data": {"quantity": number}}).encode()
    assert decode_state(state) == {"data": {"quantity": number}}
    assert type(decode_state(state)["data"]["quantity"]) is int


def test_every_field_name_decodes_to_one_shared_key() -> None:
    """World.fold keeps the keys a replay decodes as they come, relying on orjson's cache of
    keys to share them: two field names that fell in one slot of it would each cost a string
    per event. Nested rules are compacted with their keys interned, so only the top level,
    and the payload's own keys, need a slot each."""
    names = {name for spec in ALL_KINDS.values() for body in spec.bodies.values()
             for name in body.model_fields}
    names |= {"timestamp", "_type_", "_data_", "originator_topic", "record_id", "data"}
    state = json.dumps(dict.fromkeys(sorted(names), 1)).encode()
    first, again = decode_state(state), decode_state(state)
    assert [key for key, later in zip(first, again, strict=True) if key is not later] == []
