"""The hand-built canonical form is byte for byte the json.dumps form that defines the chain
(sha256-chain-v2): any difference would make logs fail verification."""

import hashlib
import json
from contextlib import closing
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

from hypothesis import example, given, settings
from hypothesis import strategies as st

from bench.synthetic import ledger
from infra.bootstrap import Container, bootstrap
from infra.seal import (
    GENESIS_HASH,
    RecordedBy,
    canonical_bytes,
    canonical_header,
    chain_hash,
    format_time,
    json_string,
    parse_time,
    reformat_time,
    seal_batch,
)
from infra.settings import Settings
from infra.verify import Verification, verify_chain, verify_rows
from tests.support.logs import append_in_commits, tamper

MANY = settings(max_examples=500, deadline=None)


def reference_canonical(
    *, position: Any, recorded_at: datetime, recorded_by: RecordedBy, originator_id: UUID,
    originator_version: Any, topic: Any, state: bytes,
) -> bytes:
    """The definition the log is sealed with, kept verbatim."""
    header = {
        "originator_id": str(originator_id),
        "originator_version": originator_version,
        "position": position,
        "recorded_at": format_time(recorded_at),
        "recorded_by": {"key_id": recorded_by.key_id, "name": recorded_by.name,
                        "role": recorded_by.role},
        "topic": topic,
    }
    line = json.dumps(header, sort_keys=True, separators=(",", ":"))
    return line.encode() + b"\n" + state


def reference_hash(prev_hash: str, canonical: bytes) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical).hexdigest()


# Every code point, lone surrogates included, with the characters JSON escapes made likely.
any_text = st.text(st.characters(codec=None, categories=None)) | st.text(
    st.sampled_from(['"', "\\", "/", "\x00", "\x1f", " ", "~", "\x7f", "\x80", "é", "\u2028",
                     "\ud800", "😀", "a", "Z", "."]))
integers = st.integers() | st.integers(min_value=-(2**70), max_value=2**70)
zones = st.sampled_from([UTC, timezone(timedelta(hours=8)),
                         timezone(timedelta(hours=-9, minutes=-30))])
moments = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                       timezones=zones)
senders = st.builds(RecordedBy, any_text, any_text, any_text)
ALICE = RecordedBy("cli:alice", "alice", "cli")


@MANY
@given(position=integers, recorded_at=moments, recorded_by=senders, originator_id=st.uuids(),
       originator_version=integers, topic=any_text, state=st.binary())
@example(position=1, recorded_at=datetime(2025, 1, 1, tzinfo=UTC), recorded_by=ALICE,
         originator_id=UUID(int=0), originator_version=1, topic="chipledger.LeaseSigned",
         state=b'{"a":1}')
def test_canonical_bytes_is_the_json_form(
    position: int, recorded_at: datetime, recorded_by: RecordedBy, originator_id: UUID,
    originator_version: int, topic: str, state: bytes,
) -> None:
    fields: dict[str, Any] = {"position": position, "recorded_at": recorded_at,
                              "recorded_by": recorded_by, "originator_id": originator_id,
                              "originator_version": originator_version, "topic": topic,
                              "state": state}
    expected = reference_canonical(**fields)
    assert canonical_bytes(**fields) == expected
    header = canonical_header(position, format_time(recorded_at), recorded_by,
                              str(originator_id), originator_version, topic)
    assert header + state == expected


def test_the_header_names_who_recorded_the_event() -> None:
    header = canonical_header(7, "2025-01-01T00:00:00.000000Z", ALICE, str(UUID(int=1)), 2, "t")
    assert header == (b'{"originator_id":"00000000-0000-0000-0000-000000000001",'
                      b'"originator_version":2,"position":7,'
                      b'"recorded_at":"2025-01-01T00:00:00.000000Z","recorded_by":'
                      b'{"key_id":"cli:alice","name":"alice","role":"cli"},"topic":"t"}\n')


@MANY
@given(recorded_by=senders)
def test_recorded_by_reads_back_from_its_stored_text(recorded_by: RecordedBy) -> None:
    assert RecordedBy.from_stored(recorded_by.canonical) == recorded_by
    assert RecordedBy.from_json(json.loads(recorded_by.canonical)) == recorded_by


@MANY
@given(text=any_text)
def test_json_string_is_json_dumps(text: str) -> None:
    assert json_string(text) == json.dumps(text)


@given(value=st.sampled_from([True, False, None, 1.0, "7"]))
def test_values_json_prints_its_own_way_keep_the_json_form(value: Any) -> None:
    fields: dict[str, Any] = {"recorded_at": datetime(2025, 1, 1, tzinfo=UTC),
                              "recorded_by": ALICE, "originator_id": UUID(int=5), "state": b""}
    for position, version, topic in ((value, 1, "t"), (1, value, "t"), (1, 1, value)):
        expected = reference_canonical(position=position, originator_version=version,
                                       topic=topic, **fields)
        assert canonical_bytes(position=position, originator_version=version, topic=topic,
                               **fields) == expected


@MANY
@given(prev=st.binary(min_size=32, max_size=32), canonical=st.binary())
def test_chain_hash_is_sha256_of_the_previous_digest_and_the_bytes(prev: bytes,
                                                                   canonical: bytes) -> None:
    assert chain_hash(prev.hex(), canonical) == reference_hash(prev.hex(), canonical)


@settings(max_examples=100, deadline=None)
@given(last_position=st.integers(0, 10**9), recorded_at=moments,
       events=st.lists(st.tuples(st.uuids(), st.integers(1, 10**6), any_text, st.binary(),
                                 senders), max_size=8))
def test_seal_batch_seals_as_the_definition_says(
    last_position: int, recorded_at: datetime,
    events: list[tuple[UUID, int, str, bytes, RecordedBy]],
) -> None:
    numbered = [(100 - n, *event) for n, event in enumerate(events)]  # out of commit order
    seals = seal_batch(last_position, GENESIS_HASH, recorded_at, numbered)
    prev = GENESIS_HASH
    for offset, (seal, (nid, oid, version, topic, state, by)) in enumerate(
        zip(seals, sorted(numbered, key=lambda e: e[0]), strict=True), start=1
    ):
        expected = reference_hash(prev, reference_canonical(
            position=last_position + offset, recorded_at=recorded_at, recorded_by=by,
            originator_id=oid, originator_version=version, topic=topic, state=state))
        assert (seal.position, seal.notification_id, seal.prev_hash, seal.hash,
                seal.recorded_by) == (last_position + offset, nid, prev, expected, by)
        prev = expected


# The paged row path against the entry path, on a real ledger -----------------------------------


def _both_ways(container: Container, page: int) -> tuple[Verification, Verification]:
    store = container.store
    with closing(store.iter_chain_rows(page=page)) as pages:
        rows = verify_rows(pages, store.canonical_time)
    return rows, verify_chain(store.iter_entries(batch=page))


def test_paged_rows_verify_as_entries_do(database_url: str) -> None:
    """Pages of 7 over commits of 1 to 40 events, intact and then tampered three ways: in the
    middle of a page, at a page's edge, and with a seal gone (which the row path pairs by
    join)."""
    container = bootstrap(Settings(database_url=database_url))
    try:
        append_in_commits(container, list(ledger(150)))
        head = container.store.head()
        assert head is not None
        assert head.position >= 150
        rows, entries = _both_ways(container, 7)
        assert rows == entries
        assert (rows.ok, rows.verified_through) == (True, head.position)
        assert _both_ways(container, 5000) == (entries, entries)

        d = container.store.dialect
        state = "CAST(state AS TEXT)" if d.events_id == "rowid" else "convert_from(state, 'UTF8')"
        blob = ("CAST({} AS BLOB)" if d.events_id == "rowid" else "convert_to({}, 'UTF8')")
        for position in (100, 63):  # inside a page of 7; the first of one
            tamper(database_url, f"UPDATE {d.events_table} SET state = "
                    + blob.format(f"replace({state}, '\"', ' \"')")
                    + f" WHERE {d.events_id} = (SELECT notification_id FROM "
                    f"{d.seals_table} WHERE position = {position})")
            rows, entries = _both_ways(container, 7)
            assert rows == entries
            assert rows.first_mismatch == position
        tamper(database_url, f"DELETE FROM {d.seals_table} WHERE position = 30")
        rows, entries = _both_ways(container, 7)
        assert rows == entries
        assert (rows.first_mismatch, rows.reason) == (30, "position 30 is missing (found 31 next)")
        tamper(database_url, f"UPDATE {d.seals_table} SET prev_hash = 'x' WHERE position = 12")
        rows, entries = _both_ways(container, 7)
        assert rows == entries
        assert rows.first_mismatch == 12
        # Two seals swap events: ids no longer follow positions within a page.
        with d.transaction(commit=False) as cursor:
            cursor.execute(d.sql(f"SELECT position, notification_id FROM {d.seals_table} "
                                 "WHERE position IN (8, 140)"))
            ids = {row["position"]: row["notification_id"] for row in cursor.fetchall()}
        for position, notification_id in ((8, -1), (140, ids[8]), (8, ids[140])):
            tamper(database_url, f"UPDATE {d.seals_table} SET notification_id = "
                    f"{notification_id} WHERE position = {position}")
        for page in (3, 7):
            rows, entries = _both_ways(container, page)
            assert rows == entries
            assert (rows.first_mismatch, rows.reason) == (8, "its content does not match its hash")
    finally:
        container.close()


def test_an_edited_recorded_by_is_found_by_both_paths(database_url: str) -> None:
    """Who recorded an event is hashed: another principal, or text that is none, put behind
    the triggers fails verification at its position, and the log still reads."""
    container = bootstrap(Settings(database_url=database_url))
    try:
        append_in_commits(container, list(ledger(60)))
        seals = container.store.dialect.seals_table
        forged = RecordedBy("k-admin", "admin", "admin").canonical
        tamper(database_url, f"UPDATE {seals} SET recorded_by = '{forged}' WHERE position = 41")
        rows, entries = _both_ways(container, 7)
        assert rows == entries
        assert (rows.first_mismatch, rows.reason) == (41, "its content does not match its hash")
        tamper(database_url, f"UPDATE {seals} SET recorded_by = 'nobody' WHERE position = 9")
        rows, entries = _both_ways(container, 7)
        assert rows == entries
        assert rows.first_mismatch == 9
        assert [e.recorded_by.name for e in container.store.entries(after=8, limit=1)] == [
            "nobody"]
    finally:
        container.close()


def reference_format(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def outcome(function: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "value", function(*args)
    except Exception as error:  # the same kind of refusal counts as the same outcome
        return "error", type(error)


@MANY
@given(moment=st.datetimes(timezones=st.none() | zones))
@example(moment=datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC))
@example(moment=datetime(1000, 1, 1, tzinfo=UTC))
@example(moment=datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC))
def test_format_time_is_strftime(moment: datetime) -> None:
    assert outcome(format_time, moment) == outcome(reference_format, moment)


# Texts near the stored form: digits anywhere, fields out of range, other digits and lengths.
near_times = st.one_of(
    moments.map(format_time),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(1200, 1, 1),
                 timezones=st.just(UTC)).map(format_time),
    st.from_regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z",
                  fullmatch=True),
    st.from_regex(r"[0-9\u0660-\u0669]{1,5}-[0-9]{1,2}-[0-9]{1,2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{1,7}Z?",
                  fullmatch=True),
    any_text,
)


@MANY
@given(text=near_times)
@example(text="2025-02-29T00:00:00.000000Z")
@example(text="2024-02-29T23:59:60.000000Z")
@example(text="0999-01-01T00:00:00.000000Z")
@example(text="2025-1-01T00:00:00.000000Z")
@example(text="2025-01-01T00:00:00.5Z")
def test_reformat_time_is_format_of_parse(text: str) -> None:
    assert outcome(reformat_time, text) == outcome(lambda t: format_time(parse_time(t)), text)
