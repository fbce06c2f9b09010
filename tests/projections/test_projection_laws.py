"""Laws of the findings projection, on random valid histories, and a runner killed mid-batch.

A history is a set of per-record streams (a record's create, then its later events); an
arrival order is any interleaving of the streams that keeps each stream's order and names
only records that already exist. Every history drawn here is one the Ledger accepts.

(a) pure: the projection, fed commit by commit, holds after every commit exactly the findings
    (and processing pieces) that a fresh evaluation of that prefix of the log gives, and
    every subject whose fresh findings a commit changed is among the subjects it touched;
(b) pure: two arrival orders of the same records give the same answers (evidence compared
    as the events it names, since positions differ);
(c) per backend: the read model, kept incrementally by the runner, answers every
    (as_of, known_at) as a fresh evaluation of the log up to known_at's position does, and
    a rebuild from zero writes exactly the same rows;
and a runner process SIGKILLed inside a batch's transaction leaves nothing of that batch; a
fresh runner then catches up to the same rows as a rebuild.

The DB-backed law builds a ledger of its own for every example (a new SQLite file or a new
PostgreSQL schema beside the fixture's), and drives ProjectionRunner by hand: no background
runner. A failing DB example takes minutes to shrink; run with a profile without the shrink
phase to see the first failure at once.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.appends import parse_batch_line
from domain.errors import InvalidRecordError
from domain.evaluator import (
    Finding,
    ProcessingPiece,
    _judge_piece,
    _merge,
    _Scratch,
    findings_for,
    processing_pieces,
    rules_for,
    screen,
)
from domain.kinds import KINDS, Role
from domain.records import LoggedEvent, RecordState, check_event, check_state
from domain.rules import RULE_KINDS
from domain.world import FIRM_FIELD, SubjectRef, World
from infra.bootstrap import Container, bootstrap
from infra.findings_store import FindingsStore
from infra.replay import ReplayService
from infra.runner import ProjectionRunner
from infra.service import AppendService
from infra.settings import Settings
from infra.store import LogEntry
from projections.findings import PROJECTION_NAME, FindingsProjection, LogEvent, commits, held
from tests.support.data import TEST_WRITER

PURE = settings(max_examples=60, deadline=None)
DB = settings(max_examples=25, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture,
                                     HealthCheck.too_slow])

# dates: anywhere in 2024-2026, with a bias to a few shared days so that edges coincide --------

FIRST_DAY, LAST_DAY = date(2024, 1, 1), date(2026, 12, 31)
PIVOTS = [date(2025, 1, 15), date(2025, 4, 9), date(2025, 5, 13), date(2025, 5, 15),
          date(2025, 7, 14), date(2025, 10, 1)]
DAYS = st.one_of(
    st.integers(0, (LAST_DAY - FIRST_DAY).days).map(lambda n: FIRST_DAY + timedelta(days=n)),
    st.sampled_from(PIVOTS),
)

CHIPS = {  # id: (tpp, performance_density, origin)
    "nvidia-h100": (15830.0, 19.4, "US"),
    "nvidia-h20": (2368.0, 2.9, "US"),
    "ascend-910b": (5000.0, 6.0, "CN"),
    "chip-mid": (1600.0, 5.92, "US"),
}
THRESHOLDS = [{"min_tpp": 4800.0}, {"min_tpp": 1600.0, "min_performance_density": 5.92},
              {"min_performance_density": 3.0}]
HQS = ["CN", "SG", "MY", "US", "HK"]
DC_COUNTRIES = ["CN", "SG", "MY"]
# Single picks lean to the cases the rules bite on (Chinese firms, compute and data abroad),
# so that most histories have findings to get wrong; lists still range over every value.
HQ = st.sampled_from(["CN", "CN", "CN", "SG", "MY", "US", "HK"])
DC_COUNTRY = st.sampled_from(["SG", "MY", "SG", "MY", "CN"])
DESTINATION = st.sampled_from(["CN", "CN", "SG", "MY", "HK"])
# regulations lean to dates before most subjects
REG_DAYS = st.one_of(
    st.integers(0, 640).map(lambda n: FIRST_DAY + timedelta(days=n)), st.sampled_from(PIVOTS))
DESTINATIONS = ["CN", "SG", "MY", "HK"]
AUTHORITY = st.sampled_from(["US-BIS", "US-BIS", "US-BIS", "MY-MITI"])
PURPOSES = ["training", "fine_tuning", "inference", "serving"]
MECHANISMS = ["security_assessment", "standard_contract", "certification"]
MAX_EVENTS = 45


# histories -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """One batch line of a record's stream."""

    ident: tuple[str, str, int]  # (kind, record id, index in the record's stream)
    text: str  # {"type": ..., "id"?: ..., "body": ...}
    needs: frozenset[tuple[str, str]]  # records that must exist before it is appended


@dataclass(frozen=True)
class History:
    streams: tuple[tuple[Line, ...], ...]

    @property
    def size(self) -> int:
        return sum(len(s) for s in self.streams)


class _Builder:
    """Builds per-record streams, keeping only later events the record's invariants accept
    (the same checks the Ledger makes), so every arrival order is accepted too."""

    def __init__(self) -> None:
        self.states: dict[tuple[str, str], RecordState] = {}
        self.streams: dict[tuple[str, str], list[Line]] = {}

    def create(self, kind: str, body: dict[str, Any]) -> str:
        spec = KINDS[kind]
        item = {"type": spec.collection, "body": body}
        data = parse_batch_line(json.dumps(item), 1).body.data()
        state = RecordState(spec, body["id"])
        state.apply(LoggedEvent(spec.events[Role.CREATE], data))
        check_state(state)  # a generator bug if it raises
        key = (kind, body["id"])
        self.states[key] = state
        self.streams[key] = [Line((*key, 0), json.dumps(item), _references(kind, data))]
        return str(body["id"])

    def later(self, kind: str, record_id: str, action: str, body: dict[str, Any]) -> bool:
        spec, key = KINDS[kind], (kind, record_id)
        item = {"type": f"{spec.collection}/{action}", "id": record_id, "body": body}
        append = parse_batch_line(json.dumps(item), 1)
        data = append.body.data()
        event = LoggedEvent(spec.events[append.role], data)
        state = self.states[key]
        try:
            check_event(state, event)
        except InvalidRecordError:
            return False
        state.apply(event)
        stream = self.streams[key]
        stream.append(Line((*key, len(stream)), json.dumps(item), _references(kind, data)))
        return True

    def history(self) -> History:
        return History(tuple(tuple(s) for s in self.streams.values()))


def _references(kind: str, data: dict[str, Any]) -> frozenset[tuple[str, str]]:
    """The records an event names, which the Ledger checks exist (kinds.py's references)."""
    named = set()
    for name, ref_kind in KINDS[kind].references.items():
        value = data.get(name)
        for ref in value if isinstance(value, list) else [value]:
            if isinstance(ref, dict):  # an owner: {"firm_id", "share"}
                ref = ref["firm_id"]
            if ref is not None:
                named.add((ref_kind, ref))
    rule = data.get("rule") or {}
    named |= {("firm", party) for party in rule.get("parties", ())}  # listed: known firms
    return frozenset(named)


def _owners(draw: st.DrawFn, earlier: list[str]) -> list[dict[str, Any]]:
    """Shares of firms registered before this one (no loop in any order), summing to <= 1."""
    picked = draw(st.lists(st.sampled_from(earlier), max_size=2, unique=True)) if earlier \
        else []
    shares = draw(st.lists(st.sampled_from([0.2, 0.3, 0.5, 0.6]), min_size=len(picked),
                           max_size=len(picked)))
    if sum(shares) > 1:
        shares = [0.5] * len(shares)
    return [{"firm_id": f, "share": x} for f, x in zip(picked, shares, strict=True)]


def _day(draw: st.DrawFn) -> str:
    return draw(DAYS).isoformat()


def _new_day(draw: st.DrawFn, taken: set[str]) -> str:
    day = draw(DAYS.map(date.isoformat).filter(lambda d: d not in taken))
    taken.add(day)
    return day


def _later_day(draw: st.DrawFn, after: str) -> str:
    return (date.fromisoformat(after) + timedelta(days=draw(st.integers(0, 400)))).isoformat()


def _subset(draw: st.DrawFn, pool: list[str], min_size: int = 1) -> list[str]:
    return draw(st.lists(st.sampled_from(pool), min_size=min_size, max_size=len(pool),
                         unique=True))


def _sometimes(draw: st.DrawFn, one_in: int) -> bool:
    return draw(st.integers(1, one_in)) == 1


def _selector(draw: st.DrawFn, chips: list[str]) -> dict[str, Any]:
    selector: dict[str, Any] = {}
    how = draw(st.sampled_from(["every", "every", "models", "any_of", "both"]))
    if how in ("models", "both"):
        selector["models"] = _subset(draw, chips)
    if how in ("any_of", "both"):
        picked = draw(st.lists(st.sampled_from(range(len(THRESHOLDS))), min_size=1,
                               max_size=2, unique=True))
        selector["any_of"] = [THRESHOLDS[i] for i in picked]
    if _sometimes(draw, 5):
        selector["origin_countries"] = ["US"]
    return selector


def _rule(draw: st.DrawFn, kind: str, chips: list[str], firms: list[str]) -> dict[str, Any]:
    if kind == "restricted_party":
        rule: dict[str, Any] = {"kind": kind, "parties": _subset(draw, firms, min_size=0),
                                "chips": _selector(draw, chips),
                                "licence_authority": draw(AUTHORITY)}
        if draw(st.booleans()):
            rule["affiliates_min_share"] = draw(st.sampled_from([0.25, 0.5]))
        if _sometimes(draw, 3):
            rule["applies_to"] = [draw(st.sampled_from(["shipments", "leases"]))]
        return rule
    return _round_one_rule(draw, kind, chips)


def _round_one_rule(draw: st.DrawFn, kind: str, chips: list[str]) -> dict[str, Any]:
    if kind == "export_licence":
        rule: dict[str, Any] = {"kind": kind, "chips": _selector(draw, chips),
                                "licence_authority": draw(AUTHORITY)}
        if draw(st.booleans()):
            rule["to_countries"] = ["CN", *_subset(draw, DESTINATIONS[1:], min_size=0)]
        if _sometimes(draw, 3):
            rule["consignee_hq_countries"] = _subset(draw, HQS)
        if _sometimes(draw, 3):
            rule["from_countries"] = _subset(draw, ["US", "MY", "SG"])
        return rule
    if kind == "remote_compute_access":
        severity = draw(st.sampled_from(["violation", "violation", "attention"]))
        rule = {"kind": kind,
                "lessee_hq_countries": ["CN", *_subset(draw, ["HK", "SG"], min_size=0)],
                "exempt_dc_countries": draw(st.sampled_from([[], [], ["CN"], ["CN", "SG"]])),
                "chips": _selector(draw, chips), "severity": severity,
                "min_chips": draw(st.sampled_from([1, 1, 100, 1000]))}
        if severity == "violation" or draw(st.booleans()):
            rule["licence_authority"] = draw(AUTHORITY)
        if _sometimes(draw, 3):
            rule["dc_countries"] = _subset(draw, DC_COUNTRIES)
        if _sometimes(draw, 3):
            rule["purposes"] = _subset(draw, PURPOSES)
        return rule
    rule = {"kind": kind,
            "data_subject_countries": ["CN", *_subset(draw, ["SG", "MY"], min_size=0)],
            "sensitive_only": _sometimes(draw, 3),
            "accepted_mechanisms": _subset(draw, MECHANISMS, min_size=0)}
    if _sometimes(draw, 3):
        rule["min_subjects"] = draw(st.sampled_from([1000, 100_000]))
    return rule


def _some(draw: st.DrawFn, options: dict[str, Callable[[], Any]]) -> dict[str, Any]:
    """A patch: at least one of the named fields, each drawn from its thunk."""
    names = draw(st.lists(st.sampled_from(sorted(options)), min_size=1, max_size=3,
                          unique=True))
    return {name: options[name]() for name in names}


@st.composite
def histories(draw: st.DrawFn) -> History:
    b = _Builder()
    later_ops = st.integers(0, 2)

    # reference records
    chips = draw(st.lists(st.sampled_from(sorted(CHIPS)), min_size=2, max_size=3, unique=True))
    for chip in chips:
        tpp, density, origin = CHIPS[chip]
        b.create("chip_model", {"id": chip, "vendor": "Vendor", "origin_country": origin,
                                "tpp": tpp, "performance_density": density})
    firms: list[str] = []
    chinese: list[str] = []
    for n in range(draw(st.integers(2, 4))):
        body: dict[str, Any] = {"id": f"firm-{n}", "name": f"Firm {n}",
                                "hq_country": draw(HQ)}
        if firms and not _sometimes(draw, 4):
            body["parent_firm_id"] = draw(st.sampled_from(firms))
        if firms and draw(st.booleans()):
            body["owners"] = _owners(draw, firms)
        firms.append(b.create("firm", body))
        if body["hq_country"] == "CN":
            chinese.append(body["id"])
    lessee = st.sampled_from(firms + firms[1:] * 2)  # leaning to firms under a parent
    dc_country = {f"dc-{n}": draw(DC_COUNTRY) for n in range(draw(st.integers(1, 3)))}
    dcs = [b.create("data_centre", {"id": dc, "name": dc, "country": country,
                                    "operator": "Operator", "operator_hq_country": draw(HQ)})
           for dc, country in dc_country.items()]
    licences, grants = [], {}
    for n in range(draw(st.sampled_from([0, 1, 2, 2, 3]))):
        models = _subset(draw, chips)
        valid_from = _day(draw)
        body = {"id": f"lic-{n}", "authority": draw(AUTHORITY),
                "holder_firm_id": draw(st.sampled_from(chinese * 2 + firms)),
                "chip_models": models,
                "destination_countries": _subset(draw, DESTINATIONS), "valid_from": valid_from}
        if draw(st.booleans()):
            body["valid_to"] = _later_day(draw, valid_from)
        if draw(st.booleans()):  # a quantity the shipments drawn here can exhaust
            body["quantity"] = draw(st.sampled_from([8, 800, 1000, 1600]))
        licences.append(b.create("licence", body))
        grants[body["id"]] = body
    regulations = []
    kinds = draw(st.permutations(RULE_KINDS))  # two or three regulations: two or three kinds
    for n in range(draw(st.sampled_from([1, 2, 3, 3]))):
        body = {"id": f"reg-{n}", "authority": draw(st.sampled_from(["US-BIS", "CN-CAC",
                                                                     "MY-MITI"])),
                "title": f"Rule {n}", "citation": f"Citation {n}",
                "effective_from": draw(REG_DAYS).isoformat(),
                "rule": _rule(draw, kinds[n], chips, firms)}
        if _sometimes(draw, 3):
            body["compliance_from"] = draw(REG_DAYS).isoformat()
        regulations.append(b.create("regulation", body))

    # subjects
    leases = []
    for n in range(draw(st.integers(1, 3))):
        starts_on = _day(draw)
        body = {"id": f"lease-{n}", "firm_id": draw(lessee),
                "data_centre_id": draw(st.sampled_from(dcs)),
                "chip_model": draw(st.sampled_from(chips)),
                "chip_count": draw(st.sampled_from([8, 100, 1000, 2048])),
                "starts_on": starts_on, "purposes": _subset(draw, PURPOSES)}
        if grants and draw(st.booleans()):  # a lease some licence might cover
            grant = grants[draw(st.sampled_from(licences))]
            body["firm_id"] = grant["holder_firm_id"]
            body["chip_model"] = draw(st.sampled_from(grant["chip_models"]))
            body["data_centre_id"] = draw(st.sampled_from(
                [dc for dc in dcs if dc_country[dc] in grant["destination_countries"]] or dcs))
        if draw(st.booleans()):
            body["ends_on"] = _later_day(draw, starts_on)
        leases.append(b.create("lease", body))
    shipments = []
    # Distinct ship dates: draws then follow shipped_on alone, and law (b) holds in any
    # arrival order (on a tie, the ShipmentRecorded positions decide: domain.md).
    shipped: set[str] = set()
    for n in range(draw(st.integers(1, 3))):
        body = {"id": f"ship-{n}", "chip_model": draw(st.sampled_from(chips)),
                "quantity": draw(st.sampled_from([8, 800])), "exporter": "NVIDIA",
                "from_country": draw(st.sampled_from(["US", "MY", "SG"])),
                "to_country": draw(DESTINATION),
                "consignee_firm_id": draw(lessee), "shipped_on": _new_day(draw, shipped)}
        if grants and draw(st.booleans()):  # a shipment some licence might cover
            grant = grants[draw(st.sampled_from(licences))]
            body["consignee_firm_id"] = grant["holder_firm_id"]
            body["chip_model"] = draw(st.sampled_from(grant["chip_models"]))
            body["to_country"] = draw(st.sampled_from(grant["destination_countries"]))
            if draw(st.booleans()):
                body["licence_id"] = grant["id"]
        shipments.append(b.create("shipment", body))
    activities = []
    for n in range(draw(st.integers(1, 3))):
        starts_on = _day(draw)
        body = {"id": f"act-{n}", "firm_id": draw(lessee),
                "purpose": draw(st.sampled_from(PURPOSES)),
                "data_subject_countries": (["CN"] if draw(st.booleans()) else [])
                + _subset(draw, ["SG", "MY"], min_size=0) or ["CN"],
                "sensitive": draw(st.booleans()), "starts_on": starts_on}
        if draw(st.booleans()):
            body["data_centre_id"] = draw(st.sampled_from(dcs))
        else:
            body["location_country"] = draw(DC_COUNTRY)
        if draw(st.booleans()):
            body["subject_count"] = draw(st.sampled_from([500, 50_000, 500_000]))
        if draw(st.booleans()):
            body["transfer_mechanism"] = draw(st.sampled_from(MECHANISMS))
        if draw(st.booleans()):
            body["ends_on"] = _later_day(draw, starts_on)
        activities.append(b.create("processing_activity", body))

    # later events, each kept only when the record's invariants accept it
    for chip in chips:
        for _ in range(draw(st.integers(0, 1))):
            b.later("chip_model", chip, "corrections", _some(draw, {
                "tpp": lambda: draw(st.sampled_from([1000.0, 2368.0, 4800.0, 15830.0])),
                "performance_density": lambda: draw(st.sampled_from([2.9, 5.92, 19.4])),
                "origin_country": lambda: draw(st.sampled_from(["US", "CN"])),
            }))
    for i, firm in enumerate(firms):
        for _ in range(draw(later_ops)):
            parents = firms[:i]
            options: dict[str, Callable[[], Any]] = {
                "hq_country": lambda: draw(st.sampled_from(HQS)),
                "name": lambda: "Renamed",
            }
            if parents:  # only firms registered before it: no cycle in any order
                options["parent_firm_id"] = lambda p=parents: draw(st.sampled_from([*p, None]))
                options["owners"] = lambda p=parents: _owners(draw, p)
            patch = _some(draw, options)
            if draw(st.booleans()):
                b.later("firm", firm, "changes", {"effective_from": _day(draw), **patch})
            else:
                b.later("firm", firm, "corrections", patch)
    for dc in dcs:
        for _ in range(draw(st.integers(0, 1))):
            patch = _some(draw, {"country": lambda: draw(st.sampled_from(DC_COUNTRIES)),
                                 "operator_hq_country": lambda: draw(st.sampled_from(HQS))})
            if draw(st.booleans()):
                b.later("data_centre", dc, "changes", {"effective_from": _day(draw), **patch})
            else:
                b.later("data_centre", dc, "corrections", patch)
    for licence in licences:
        if draw(st.integers(0, 2)) == 0:
            b.later("licence", licence, "revocation", {"effective_from": _day(draw)})
    for regulation in regulations:
        current = json.loads(b.streams[("regulation", regulation)][0].text)["body"]["rule"]
        for _ in range(draw(later_ops)):
            if _sometimes(draw, 4):
                b.later("regulation", regulation, "rescission", {"effective_from": _day(draw)})
            elif _sometimes(draw, 3):
                start = _day(draw)
                until = {"until": _later_day(draw, start)} if draw(st.booleans()) else {}
                b.later("regulation", regulation, "suspension", {"effective_from": start,
                                                                 **until})
                if draw(st.booleans()):
                    b.later("regulation", regulation, "reinstatement",
                            {"effective_from": _later_day(draw, start)})
            else:
                kind = draw(st.sampled_from([current["kind"]] * 3 + list(RULE_KINDS)))
                b.later("regulation", regulation, "amendments",
                        {"effective_from": _day(draw),
                         "rule": _rule(draw, kind, chips, firms)})
    for lease in leases:
        for _ in range(draw(st.integers(0, 3))):
            op = draw(st.sampled_from(["amendments", "termination", "due-diligence",
                                       "corrections"]))
            if op == "amendments":
                patch = _some(draw, {
                    "chip_count": lambda: draw(st.sampled_from([8, 100, 1000, 4096])),
                    "ends_on": lambda: draw(st.none() | DAYS.map(date.isoformat)),
                    "purposes": lambda: _subset(draw, PURPOSES),
                    "chip_model": lambda: draw(st.sampled_from(chips)),
                })
                b.later("lease", lease, op, {"effective_from": _day(draw), **patch})
            elif op == "termination":
                b.later("lease", lease, op, {"effective_from": _day(draw)})
            elif op == "due-diligence":
                b.later("lease", lease, op, {"completed_on": _day(draw), "reference": "DD-1"})
            else:
                patch = _some(draw, {
                    "firm_id": lambda: draw(st.sampled_from(firms)),
                    "data_centre_id": lambda: draw(st.sampled_from(dcs)),
                    "chip_model": lambda: draw(st.sampled_from(chips)),
                    "chip_count": lambda: draw(st.sampled_from([8, 100, 1000, 4096])),
                    "starts_on": lambda: _day(draw),
                    "ends_on": lambda: _day(draw),
                })
                b.later("lease", lease, op, patch)
    for shipment in shipments:
        for _ in range(draw(st.integers(0, 1))):
            options = {
                "chip_model": lambda: draw(st.sampled_from(chips)),
                "to_country": lambda: draw(st.sampled_from(DESTINATIONS)),
                "from_country": lambda: draw(st.sampled_from(["US", "MY", "SG"])),
                "consignee_firm_id": lambda: draw(st.sampled_from(firms)),
                "shipped_on": lambda: _new_day(draw, shipped),
                "quantity": lambda: draw(st.sampled_from([8, 800])),
            }
            patch = _some(draw, options)
            b.later("shipment", shipment, "corrections", patch)
    for activity in activities:
        for _ in range(draw(later_ops)):
            op = draw(st.sampled_from(["changes", "end", "corrections"]))
            if op == "end":
                b.later("processing_activity", activity, op, {"effective_from": _day(draw)})
                continue
            options = {
                "data_subject_countries": lambda: _subset(draw, ["CN", "SG", "MY"]),
                "sensitive": lambda: draw(st.booleans()),
                "subject_count": lambda: draw(st.sampled_from([500, 50_000, 500_000])),
                "transfer_mechanism": lambda: draw(st.sampled_from([None, *MECHANISMS])),
                "data_centre_id": lambda: draw(st.sampled_from(dcs)),
                "location_country": lambda: draw(st.sampled_from(DC_COUNTRIES)),
                "ends_on": lambda: _day(draw),
            }
            if op == "corrections":
                options["firm_id"] = lambda: draw(st.sampled_from(firms))
                options["starts_on"] = lambda: _day(draw)
            patch = _some(draw, options)
            if "data_centre_id" in patch and "location_country" in patch:
                del patch["location_country"]  # one place at a time
            body = patch if op == "corrections" else {"effective_from": _day(draw), **patch}
            b.later("processing_activity", activity, op, body)
    history = b.history()
    return _trimmed(history)


def _trimmed(history: History) -> History:
    """Keep histories small: drop later events from the end of the longest streams."""
    streams = [list(s) for s in history.streams]
    while sum(map(len, streams)) > MAX_EVENTS:
        longest = max(streams, key=len)
        if len(longest) == 1:
            break
        longest.pop()
    return History(tuple(tuple(s) for s in streams))


@st.composite
def arrivals(draw: st.DrawFn, history: History) -> list[Line]:
    """One arrival order: an interleaving of the streams in which references exist.

    Each line draws a random rank and the ready line of lowest rank arrives next (so it
    shrinks to the streams one after another). Regulations, licences and the later events
    of firms, data centres and chip models rank over twice the range: half of them arrive
    after every subject, where what they touch is put to the test."""
    ranks = iter(draw(st.lists(st.integers(0, 19_999), min_size=history.size,
                               max_size=history.size)))
    rank = [[next(ranks) if _late(line) else next(ranks) % 10_000 for line in s]
            for s in history.streams]
    heads = [0] * len(history.streams)
    created: set[tuple[str, str]] = set()
    order: list[Line] = []
    while True:
        ready = [i for i, s in enumerate(history.streams)
                 if heads[i] < len(s) and s[heads[i]].needs <= created]
        if not ready:
            break
        i = min(ready, key=lambda i: (rank[i][heads[i]], i))
        line = history.streams[i][heads[i]]
        heads[i] += 1
        created.add(line.ident[:2])
        order.append(line)
    assert len(order) == history.size, "a history whose references can never be met"
    return order


def _late(line: Line) -> bool:
    kind, _, index = line.ident
    return kind in ("regulation", "licence") or (kind in ("firm", "data_centre", "chip_model")
                                                  and index > 0)


@st.composite
def commit_splits(draw: st.DrawFn, lines: list[Line]) -> list[list[Line]]:
    """The same lines cut into commits of 1 to 8 lines."""
    batches, rest = [], list(lines)
    while rest:
        n = draw(st.integers(1, 8))
        batches.append(rest[:n])
        rest = rest[n:]
    return batches


@st.composite
def histories_in_commits(draw: st.DrawFn) -> list[list[Line]]:
    history = draw(histories())
    return draw(commit_splits(draw(arrivals(history))))


# the log, without a database ---------------------------------------------------------------------

T0 = datetime(2025, 11, 1, tzinfo=UTC)


def as_log(batches: list[list[Line]]) -> list[LogEvent]:
    """Positions 1, 2, ...; one recorded_at per commit, as the recorders seal them."""
    events = []
    for n, batch in enumerate(batches):
        for line in batch:
            append = parse_batch_line(line.text, 1)
            events.append(LogEvent(len(events) + 1, T0 + timedelta(seconds=n), append.kind,
                                   append.target_id, KINDS[append.kind].events[append.role],
                                   append.body.data()))
    return events


def world_of(events: list[LogEvent]) -> World:
    world = World()
    for e in events:
        world.apply(e.kind, e.record_id, LoggedEvent(e.type, e.data, e.position))
    return world


def fresh_findings(world: World) -> dict[SubjectRef, set[Finding]]:
    return {ref: found for ref in world.subjects() if (found := set(findings_for(world, ref)))}


def fresh_pieces(world: World) -> dict[SubjectRef, set[ProcessingPiece]]:
    result = {}
    for state in world.of_kind("processing_activity"):
        if pieces := set(processing_pieces(world, state)):
            result[SubjectRef("processing_activity", state.record_id)] = pieces
    return result


def as_held(found: dict[SubjectRef, set[Finding]]) -> dict[SubjectRef, set[Finding]]:
    """Findings as the projection keeps them in memory (explanation and evidence digested)."""
    return {ref: {held(f) for f in fs} for ref, fs in found.items()}


def open_of(projection: FindingsProjection) -> tuple[dict[SubjectRef, set[Finding]],
                                                    dict[SubjectRef, set[ProcessingPiece]]]:
    findings = {ref: set(rows) for ref, rows in projection.open.items() if rows}
    pieces = {ref: set(rows) for ref, rows in projection.open_pieces.items() if rows}
    return findings, pieces


def assert_same(actual: Any, expected: Any, where: str) -> None:
    """Equality of two collections of findings (as multisets, or as per-subject sets),
    naming what is missing and what is extra."""
    if isinstance(actual, dict) and not isinstance(actual, Counter):
        if actual == expected:
            return
        keys = sorted(set(actual) | set(expected))
        lines = [f"{k}: missing {expected.get(k, set()) - actual.get(k, set())}, extra "
                 f"{actual.get(k, set()) - expected.get(k, set())}"
                 for k in keys if actual.get(k) != expected.get(k)]
    else:
        a, e = Counter(actual), Counter(expected)
        if a == e:
            return
        lines = [f"missing {list((e - a).elements())}", f"extra {list((a - e).elements())}"]
    raise AssertionError(f"{where}:\n" + "\n".join(lines))


# (a) incremental == fresh, after every commit ----------------------------------------------------


@settings(PURE, max_examples=100)  # cheap, and the touch table's gaps are rare to draw
@given(histories_in_commits())
def test_the_projection_after_every_commit_equals_a_fresh_evaluation_of_that_prefix(
    batches: list[list[Line]],
):
    log = as_log(batches)
    grouped = list(commits(log))
    assert [len(g) for g in grouped] == [len(b) for b in batches]
    projection = FindingsProjection()
    seen, before = 0, {}
    for n, group in enumerate(grouped, 1):
        commit = projection.apply_commit(group)
        seen += len(group)
        world = world_of(log[:seen])
        fresh = fresh_findings(world)
        # what the commit changed, it touched (architecture.md's table is complete)
        changed = {ref for ref in fresh.keys() | before.keys()
                   if fresh.get(ref) != before.get(ref)}
        assert changed <= commit.touched, (
            f"commit {n} ({[(e.kind, e.record_id, e.type) for e in group]}) changed the "
            f"findings of {sorted(changed - commit.touched)} without touching them")
        found, pieces = open_of(projection)
        assert_same(found, as_held(fresh), f"findings after commit {n} (position {seen})")
        assert_same(pieces, fresh_pieces(world), f"pieces after commit {n} (position {seen})")
        before = fresh
    # and the last commit's answer is every subject's fresh answer
    final = world_of(log)
    for ref in final.subjects():
        assert set(projection.open.get(ref, {})) == {held(f) for f in findings_for(final, ref)}, ref


@settings(PURE, max_examples=150)
@given(histories_in_commits())
def test_screening_a_subject_never_hides_a_verdict(batches: list[list[Line]]):
    """A rule piece the screen rules out would have judged no day at all: judging every
    piece regardless gives exactly the findings `findings_for` gives."""
    world = world_of(as_log(batches))
    for ref in world.subjects():
        state = world.get(ref.kind, ref.record_id)
        assert state is not None
        may_bind = screen(world, state)
        firm_id = state.original.get(FIRM_FIELD[ref.kind]) or ""
        scratch, unscreened = _Scratch(world), []
        for regulation, pieces in rules_for(world, ref.kind):
            for piece in pieces:
                judged = _judge_piece(scratch, state, firm_id, regulation, piece)
                if not may_bind(piece):
                    assert judged == [], (ref, regulation.record_id, piece)
                unscreened += judged
        assert findings_for(world, ref) == _merge(unscreened), ref


def test_the_screen_both_skips_and_keeps_rules():
    """On a fixed sample, the screen rules pieces out and lets others through for every
    kind of subject (so the law above is not vacuous either way)."""
    outcomes: Counter[tuple[str, bool]] = Counter()

    @settings(max_examples=60, deadline=None, database=None, derandomize=True)
    @given(histories_in_commits())
    def collect(batches: list[list[Line]]) -> None:
        world = world_of(as_log(batches))
        for ref in world.subjects():
            state = world.get(ref.kind, ref.record_id)
            assert state is not None
            may_bind = screen(world, state)
            outcomes.update((ref.kind, may_bind(piece))
                            for _, pieces in rules_for(world, ref.kind) for piece in pieces)

    collect()
    for kind in ("lease", "shipment", "processing_activity"):
        assert outcomes[(kind, True)] > 0, outcomes
        assert outcomes[(kind, False)] > 0, outcomes


@settings(PURE, max_examples=60)
@given(histories_in_commits(), st.data())
def test_a_rebuild_announces_only_commits_after_the_last_announced_one(
    batches: list[list[Line]], data: st.DataObject,
):
    """Projected again with the outbox holding messages up to some commit, the projection
    writes the same rows for every commit, and the same messages for the later ones only."""
    grouped = list(commits(as_log(batches)))
    projection = FindingsProjection()
    first = [projection.apply_commit(g) for g in grouped]
    through = data.draw(st.sampled_from([0, *(c.position for c in first)]))
    again = FindingsProjection()
    again.announced_through = through
    for before, after in zip(first, (again.apply_commit(g) for g in grouped), strict=True):
        assert (after.opened, after.closed) == (before.opened, before.closed)
        assert after.messages == (before.messages if before.position > through else [])


def test_the_histories_are_not_vacuous():
    """Many histories drawn have findings, of every rule kind and every status, and every
    event type is drawn (a derandomized sample: the same on every run of the same code. Not
    of any code: Hypothesis also draws constants found in the modules imported, so new code
    elsewhere moves the sample; 300 histories leave room for the rarest status)."""
    statuses: Counter[tuple[str, str]] = Counter()
    later: Counter[str] = Counter()
    with_findings = []

    @settings(max_examples=300, deadline=None, database=None, derandomize=True)
    @given(histories_in_commits())
    def collect(batches: list[list[Line]]) -> None:
        log = as_log(batches)
        found = [f for fs in fresh_findings(world_of(log)).values() for f in fs]
        with_findings.append(bool(found))
        statuses.update((f.subject_type, f.status.value) for f in found)
        later.update(e.type for e in log)

    collect()
    assert sum(with_findings) >= len(with_findings) / 3, statuses
    assert {kind for kind, _ in statuses} == {"lease", "shipment", "processing_activity"}
    assert {s for _, s in statuses} == {"compliant", "attention", "violation"}, statuses
    events = {t for spec in KINDS.values() for t in spec.events.values()}
    assert events - set(later) == set(), "event types never drawn"


# (b) arrival order of unrelated records does not change the answers -------------------------------


def canonical(log: list[LogEvent], projection: FindingsProjection) -> tuple[
        set[tuple[Any, ...]], set[ProcessingPiece]]:
    """The open findings with evidence named by event (record and its n-th event), not by
    position, and the open processing pieces."""
    seq: Counter[tuple[str, str]] = Counter()
    name: dict[int, tuple[str, str, int]] = {}
    for e in log:
        name[e.position] = (e.kind, e.record_id, seq[(e.kind, e.record_id)])
        seq[(e.kind, e.record_id)] += 1
    # The projection keeps digests; each open one is a full finding of its subject now.
    full: dict[Finding, Finding] = {}
    for ref in projection.open:
        full |= {held(f): f for f in findings_for(projection.world, ref)}
    found = {
        (f.firm_id, f.subject_type, f.subject_id, f.regulation_id, f.valid_from, f.valid_to,
         f.status, f.citation, f.explanation, tuple(sorted(name[p] for p in f.evidence)))
        for rows in projection.open.values() for f in (full[h] for h in rows)
    }
    pieces = {p for rows in projection.open_pieces.values() for p in rows}
    return found, pieces


def project(batches: list[list[Line]]) -> tuple[list[LogEvent], FindingsProjection]:
    log = as_log(batches)
    projection = FindingsProjection()
    for group in commits(log):
        projection.apply_commit(group)
    return log, projection


@PURE
@given(histories(), st.data())
def test_the_order_in_which_unrelated_records_arrive_does_not_change_any_answer(
    history: History, data: st.DataObject
):
    one = data.draw(arrivals(history).flatmap(commit_splits), label="one order")
    other = data.draw(arrivals(history).flatmap(commit_splits), label="another order")
    found_one, pieces_one = canonical(*project(one))
    found_other, pieces_other = canonical(*project(other))
    assert_same(found_other, found_one, "open findings in another arrival order")
    assert pieces_other == pieces_one
    # the fresh evaluation agrees, whatever the order
    fresh = {f for fs in fresh_findings(world_of(as_log(other))).values() for f in fs}
    assert len(fresh) == len(found_other)


# (c) the read model on both backends -------------------------------------------------------------


@contextmanager
def fresh_container(database_url: str, tmp_path: Path) -> Iterator[Container]:
    """A ledger of its own for one example: a new SQLite file, or a new PostgreSQL schema."""
    if database_url.startswith("sqlite"):
        url, drop = f"sqlite:///{tmp_path / f'ex-{uuid.uuid4().hex}.db'}", None
    else:
        base = database_url.split("?")[0]
        drop = f"p_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{drop}"')
        url = f"{base}?schema={drop}"
    container = bootstrap(Settings(database_url=url, log_format="console",
                                   log_level="warning"))
    try:
        yield container
    finally:
        container.close()
        if drop is not None:
            with psycopg.connect(database_url.split("?")[0], autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{drop}" CASCADE')


def append_lines(container: Container, lines: list[str]) -> None:
    appends = [parse_batch_line(text, n) for n, text in enumerate(lines, 1)]
    answer = AppendService(container).append(appends, recorded_by=TEST_WRITER, batch=True)
    assert answer.status == 201, answer.body


def fresh_at(entries: list[LogEntry], position: int) -> World:
    world = World()
    for e in entries:
        if e.position > position:
            break
        world.apply(e.kind, e.record_id, LoggedEvent(e.type, e.data, e.position))
    return world


FINDING_COLUMNS = ("firm_id, subject_type, subject_id, regulation_id, valid_from, valid_to, "
                   "status, recorded_from_position, recorded_to_position, recorded_from, "
                   "recorded_to, citation, explanation, evidence")
PIECE_COLUMNS = ("firm_id, activity_id, data_subject_country, valid_from, valid_to, "
                 "processed_in, recorded_from_position, recorded_to_position, recorded_from, "
                 "recorded_to")


def table_rows(container: Container) -> tuple[Counter[tuple[Any, ...]],
                                              Counter[tuple[Any, ...]]]:
    """Every row of the findings and residency tables, every column."""
    d = container.store.dialect
    out = []
    for table, columns in ((d.findings_table, FINDING_COLUMNS),
                           (d.residency_table, PIECE_COLUMNS)):
        names = [c.strip() for c in columns.split(",")]
        with d.transaction(commit=False) as cursor:
            cursor.execute(f"SELECT {columns} FROM {table}")
            out.append(Counter(tuple(row[n] for n in names) for row in cursor.fetchall()))
    return out[0], out[1]


def read_model(container: Container, positions: list[int]) -> dict[str, Any]:
    """What the read model answers: findings as known at each position, and the open rows."""
    store = FindingsStore(container.store.dialect)
    return {
        "at": {p: store.findings(position=p) for p in positions},
        "open": Counter(store.open_findings()),
        "open_pieces": Counter(store.open_pieces()),
        "tracking": store.tracking(PROJECTION_NAME),
    }


@DB
@given(batches=histories_in_commits(), data=st.data())
def test_the_read_model_answers_every_moment_as_a_fresh_evaluation_and_a_rebuild_agrees(
    database_url: str, tmp_path: Path, batches: list[list[Line]], data: st.DataObject
):
    batch_size = data.draw(st.sampled_from([1, 3, 7, 50, 2000]), label="batch size")
    with fresh_container(database_url, tmp_path) as container:
        runner = ProjectionRunner(container, batch_size=batch_size)
        for batch in batches:
            append_lines(container, [line.text for line in batch])
            if data.draw(st.booleans(), label="catch up now"):
                if data.draw(st.integers(0, 3), label="restart") == 0:
                    runner = ProjectionRunner(container, batch_size=batch_size)  # load()
                runner.catch_up()
        head = runner.catch_up()
        store, findings = container.store, FindingsStore(container.store.dialect)
        entries = store.entries(after=0, limit=10_000)
        assert head == len(entries) == sum(map(len, batches))
        assert findings.tracking(PROJECTION_NAME) == head

        # (as_of, known_at) pairs: known_at just before the log, or at a commit's recorded_at
        known_ats = [entries[0].recorded_at - timedelta(seconds=1)]
        known_ats += [e.recorded_at for e in entries]
        moments = data.draw(st.lists(st.tuples(st.sampled_from(known_ats), DAYS),
                                     min_size=4, max_size=10), label="moments")
        moments.append((entries[-1].recorded_at, data.draw(DAYS, label="day at head")))
        for known_at, day in moments:
            position = store.position_at(known_at)
            world = fresh_at(entries, position)
            everything = [f for fs in fresh_findings(world).values() for f in fs]
            where = f"as_of {day}, known at {known_at} (position {position})"
            assert_same(findings.findings(position=position, day=day),
                        [f for f in everything if f.holds_on(day)], where)
            assert_same(findings.findings(position=position), everything, where + ", any day")
            for firm in world.of_kind("firm"):
                expected = sorted(p for ps in fresh_pieces(world).values() for p in ps
                                  if p.firm_id == firm.record_id and p.holds_on(day))
                assert findings.pieces(position=position, firm_id=firm.record_id,
                                       day=day) == expected, (where, firm.record_id)

        # a rebuild from zero, in batches of another size, writes exactly the same rows
        boundaries = sorted({0, *(store.position_at(e.recorded_at) for e in entries)})
        incremental, incremental_rows = read_model(container, boundaries), table_rows(container)
        rebuild_size = data.draw(st.sampled_from([1, 4, 2000]), label="rebuild batch size")
        assert ProjectionRunner(container, batch_size=rebuild_size).rebuild() == head
        rebuilt, rebuilt_rows = read_model(container, boundaries), table_rows(container)
        assert rebuilt["tracking"] == incremental["tracking"] == head
        for p in boundaries:
            assert_same(rebuilt["at"][p], incremental["at"][p], f"rebuilt rows at position {p}")
        assert_same(rebuilt["open"], incremental["open"], "rebuilt open findings")
        assert_same(rebuilt["open_pieces"], incremental["open_pieces"], "rebuilt open pieces")
        assert_same(rebuilt_rows[0], incremental_rows[0], "rebuilt findings table")
        assert_same(rebuilt_rows[1], incremental_rows[1], "rebuilt residency table")


# a runner killed in the middle of a batch ---------------------------------------------------------

KILLED_RUNNER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from infra.bootstrap import bootstrap
    from infra.findings_store import FindingsStore
    from infra.runner import ProjectionRunner
    from infra.settings import Settings

    marker, batch_size, hang_on = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])

    class HangingFindingsStore(FindingsStore):
        writes = 0

        def _move_tracking(self, cursor, name, seen, reached):
            # The last statement of FindingsStore.write's transaction: the batch's rows are
            # written, tracking is moved, and nothing is committed yet.
            super()._move_tracking(cursor, name, seen, reached)
            HangingFindingsStore.writes += 1
            if HangingFindingsStore.writes == hang_on:
                cursor.execute(self.dialect.sql(
                    f"SELECT count(*) AS n FROM {self.table} WHERE recorded_from_position > %s"),
                    (seen,))
                written = cursor.fetchone()["n"]
                marker.write_text(f"{seen} {reached} {written}")
                time.sleep(120)

    container = bootstrap(Settings())
    runner = ProjectionRunner(container, batch_size=batch_size)
    runner.findings = HangingFindingsStore(container.store.dialect)
    runner.catch_up()
    sys.exit(3)  # not reached: the test kills the process inside its transaction
""")

CRASH_FIRMS = 1000
CRASH_COMMIT = 250  # events per append; the killed runner's batches are the same size
HANG_ON = 6  # the batch the runner dies in: positions 1,251 to 1,500, leases


def crash_ledger() -> list[str]:
    """3,056 events: two chips, two data centres, two regulations, then 1,000 firms (a third
    of them Chinese, some under a parent), 50 licences, 1,000 leases and 1,000 shipments."""
    lines = [
        {"type": "chip-models", "body": {"id": "nvidia-h20", "vendor": "NVIDIA",
                                         "origin_country": "US", "tpp": 2368.0,
                                         "performance_density": 2.9}},
        {"type": "chip-models", "body": {"id": "nvidia-h100", "vendor": "NVIDIA",
                                         "origin_country": "US", "tpp": 15830.0,
                                         "performance_density": 19.4}},
        {"type": "data-centres", "body": {"id": "johor", "name": "Johor", "country": "MY",
                                          "operator": "Op", "operator_hq_country": "MY"}},
        {"type": "data-centres", "body": {"id": "jurong", "name": "Jurong", "country": "SG",
                                          "operator": "Op", "operator_hq_country": "SG"}},
        {"type": "regulations", "body": {
            "id": "h20", "authority": "US-BIS", "title": "H20", "citation": "BIS letter",
            "effective_from": "2025-04-09",
            "rule": {"kind": "export_licence", "chips": {"models": ["nvidia-h20"]},
                     "to_countries": ["CN"], "licence_authority": "US-BIS"}}},
        {"type": "regulations", "body": {
            "id": "red-flag", "authority": "US-BIS", "title": "Guidance", "citation": "G",
            "effective_from": "2025-05-13",
            "rule": {"kind": "remote_compute_access", "lessee_hq_countries": ["CN"],
                     "severity": "attention"}}},
    ]
    for n in range(CRASH_FIRMS):
        body: dict[str, Any] = {"id": f"f-{n}", "name": f"Firm {n}",
                                "hq_country": ["CN", "SG", "MY"][n % 3]}
        if n % 7 == 1:
            body["parent_firm_id"] = f"f-{n - 1}"
        lines.append({"type": "firms", "body": body})
    for n in range(0, CRASH_FIRMS, 20):  # some Chinese consignees hold a licence
        lines.append({"type": "licences", "body": {
            "id": f"lic-{n}", "authority": "US-BIS", "holder_firm_id": f"f-{n}",
            "chip_models": ["nvidia-h20"], "destination_countries": ["CN"],
            "valid_from": "2025-01-01"}})
    for n in range(CRASH_FIRMS):
        lines.append({"type": "leases", "body": {
            "id": f"l-{n}", "firm_id": f"f-{n}", "data_centre_id": ["johor", "jurong"][n % 2],
            "chip_model": "nvidia-h100", "chip_count": 64 + n,
            "starts_on": (date(2025, 1, 1) + timedelta(days=n % 300)).isoformat(),
            "purposes": ["training"]}})
    for n in range(CRASH_FIRMS):
        lines.append({"type": "shipments", "body": {
            "id": f"s-{n}", "chip_model": "nvidia-h20", "quantity": 10 + n,
            "from_country": "US", "to_country": ["CN", "SG"][n % 2],
            "consignee_firm_id": f"f-{n}",
            "shipped_on": (date(2025, 3, 1) + timedelta(days=n % 200)).isoformat()}})
    return [json.dumps(line) for line in lines]


@pytest.mark.slow
def test_a_runner_killed_inside_a_batch_leaves_nothing_of_it_and_a_fresh_one_catches_up(
    container: Container, database_url: str, tmp_path: Path
):
    # Step 1: the ledger, in commits of CRASH_COMMIT events.
    lines = crash_ledger()
    for start in range(0, len(lines), CRASH_COMMIT):
        append_lines(container, lines[start:start + CRASH_COMMIT])
    head = container.store.head()
    assert head is not None
    assert head.position == len(lines)

    # Step 2: a runner process commits five batches and is killed inside the sixth.
    marker = tmp_path / "inside-batch"
    env = {**os.environ, "CHIPLEDGER_DATABASE_URL": database_url,
           "CHIPLEDGER_LOG_LEVEL": "warning"}
    child = subprocess.Popen([sys.executable, "-c", KILLED_RUNNER, str(marker),
                              str(CRASH_COMMIT), str(HANG_ON)], env=env,
                             cwd=Path(__file__).parents[2])
    try:
        _wait_for(lambda: marker.exists() and marker.read_text() != "", child, timeout=120)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
    seen, reached, written = map(int, marker.read_text().split())
    assert (seen, reached) == ((HANG_ON - 1) * CRASH_COMMIT, HANG_ON * CRASH_COMMIT)
    assert written > 0  # the killed batch had written rows before it died

    # Step 3: tracking stayed at the last committed batch, and nothing of the killed batch
    # survives: no row opened or closed after it.
    findings = FindingsStore(container.store.dialect)
    assert findings.tracking(PROJECTION_NAME) == seen
    rows, pieces = table_rows(container)
    assert rows, "the committed batches wrote findings"
    from_col, to_col = 7, 8  # recorded_from_position, recorded_to_position
    assert max(r[from_col] for r in rows) <= seen
    assert all(r[to_col] is None or r[to_col] <= seen for r in rows)
    assert all(p[6] <= seen and (p[7] is None or p[7] <= seen) for p in pieces)
    committed = read_model(container, [seen])

    # Step 4: a fresh runner resumes from there; the result is what a rebuild from zero gives.
    runner = ProjectionRunner(container, batch_size=CRASH_COMMIT)
    assert runner.catch_up() == head.position
    assert findings.tracking(PROJECTION_NAME) == head.position
    resumed, resumed_rows = read_model(container, [0, seen, head.position]), table_rows(container)
    assert resumed["at"][seen] == committed["at"][seen]  # the past as known stays put
    assert ProjectionRunner(container, batch_size=CRASH_COMMIT).rebuild() == head.position
    rebuilt, rebuilt_rows = read_model(container, [0, seen, head.position]), table_rows(container)
    assert_same(rebuilt_rows[0], resumed_rows[0], "findings table after resume vs rebuild")
    assert_same(rebuilt_rows[1], resumed_rows[1], "residency table after resume vs rebuild")
    assert rebuilt == resumed

    # and the read model is the fresh evaluation of the whole log
    world = fresh_at(container.store.entries(after=0, limit=len(lines) + 1), head.position)
    everything = [f for fs in fresh_findings(world).values() for f in fs]
    statuses = Counter(f.status.value for f in everything)
    assert set(statuses) == {"compliant", "attention", "violation"}, statuses
    assert_same(rebuilt["at"][head.position], everything, "read model vs fresh evaluation")


def _wait_for(condition: Callable[[], bool], child: subprocess.Popen[bytes],
              timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if child.poll() is not None:
            raise AssertionError(f"runner exited early with {child.returncode}")
        if time.monotonic() > deadline:
            raise AssertionError("runner never reached the batch it hangs in")
        time.sleep(0.05)


@settings(DB, max_examples=15)
@given(batches=histories_in_commits(), data=st.data())
def test_an_audit_replay_agrees_with_the_read_model_at_every_moment(
    database_url: str, tmp_path: Path, batches: list[list[Line]], data: st.DataObject
):
    with fresh_container(database_url, tmp_path) as container:
        # Step 1: the history is recorded in commits and projected.
        for batch in batches:
            append_lines(container, [line.text for line in batch])
        ProjectionRunner(container).catch_up()
        entries = container.store.entries(after=0, limit=10_000)
        # Step 2: replays from the raw log, at random moments, say the read model agrees.
        moments = data.draw(st.lists(st.tuples(st.sampled_from(entries), DAYS), min_size=2,
                                     max_size=5), label="moments")
        service = ReplayService(container)
        for entry, day in moments:
            result = service.replay(day, entry.recorded_at)
            assert result.consistent_with_projections is True, result.differences
            assert result.events_replayed == result.position >= entry.position
